"""Imports every feature's tables so the metadata is complete."""

from openlocker.access import models as access_models
from openlocker.audit import models as audit_models
from openlocker.fleet import models as fleet_models
from openlocker.lockers import models as lockers_models
from openlocker.notify import models as notify_models
from openlocker.orders import models as orders_models
from openlocker.orgs import models as orgs_models
from openlocker.parcels import models as parcels_models
from openlocker.returns import models as returns_models
from openlocker.web import models as web_models
from openlocker.webhooks import models as webhooks_models

__all__ = [
    "access_models",
    "audit_models",
    "fleet_models",
    "lockers_models",
    "notify_models",
    "orders_models",
    "orgs_models",
    "parcels_models",
    "returns_models",
    "web_models",
    "webhooks_models",
]
