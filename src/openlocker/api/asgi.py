"""The ASGI app as uvicorn imports it in each worker process."""

from openlocker.api.app import create_app
from openlocker.core.config import get_settings
from openlocker.core.logging import setup_logging

setup_logging(get_settings().log_level)
app = create_app()
