"""The ASGI app as uvicorn imports it in each worker process."""

import sys

from openlocker.api.app import create_app
from openlocker.core.config import get_settings
from openlocker.core.logging import setup_logging
from openlocker.core.secret import SecretKeyMissing

setup_logging(get_settings().log_level)
try:
    app = create_app()
except SecretKeyMissing as missing:
    sys.exit(f"openlocker: {missing}")
