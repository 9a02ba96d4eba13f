"""What the touchscreen's fulfilment flows may say (``static/fulfil.js``), by key; merged
into the page's messages by ``screen.py``."""

from __future__ import annotations


def N_(message: str) -> str:
    """Marks a message for the catalogs; translated when the page is rendered."""
    return message


MESSAGES = {
    "needs_network": N_(
        "This needs the network, and the locker is offline. Please try again later."
    ),
    "return_invalid_code": N_("This is not a return code. Check it and try again."),
    "return_code_used": N_("This return code has been used already."),
    "return_code_expired": N_("This return code has expired. Please contact the retailer."),
    "return_site_full": N_(
        "No free compartment here takes this parcel. Please try another locker."
    ),
    "return_put": N_("Put your parcel in and close the door. Your receipt is on its way."),
    "return_short": N_("Type the whole return code (16 characters)."),
    "age_restricted": N_("This order is for adults only: please show your ID to the staff."),
    "order_not_expected": N_("No order with this reference waits to be loaded here."),
    "order_loaded": N_("This order is loaded already."),
    "loading_in_progress": N_("Another order is being loaded: finish it first."),
    "load_waiting": N_("waiting"),
    "load_open": N_("door open"),
    "load_empty": N_("closed empty"),
    "load_loaded": N_("loaded"),
    "load_done": N_("Order %(reference)s is loaded. The customer gets their code now."),
    "load_done_offline": N_(
        "Order %(reference)s is loaded. The customer gets their code when the locker is online."
    ),
    "load_none": N_("No order waits to be loaded here."),
    "load_items": N_("%(loaded)s of %(items)s loaded"),
    "load_put": N_("Put the item in compartment %(label)s and close the door."),
    "load_again": N_(
        "The door was closed on an empty compartment: tap “Open the door again” and put the"
        " item in."
    ),
    "collect_parcels": N_("Collect parcels"),
    "collect_nothing": N_("Nothing to collect"),
    "collect_one": N_("Collect 1 parcel"),
    "collect_many": N_("Collect %(count)s parcels"),
    "collect_take": N_("Take %(parcel)s from compartment %(label)s and scan it."),
    "collect_none": N_("Nothing to collect here for your organization."),
    "collect_waiting": N_("waiting"),
    "collect_open": N_("door open"),
    "collect_collected": N_("collected"),
    "collect_missing": N_("missing: reported"),
    "collect_not_opened": N_("door did not open"),
    "collect_summary": N_("Visit done: %(collected)s collected, %(missing)s missing."),
    "not_in_manifest": N_("This parcel is not on your list for this locker."),
    "door_closed": N_("Take the parcels in turn: this one's door is not open yet."),
    "already_scanned": N_("This parcel has been scanned already."),
    "not_at_site": N_("This parcel is not at this locker."),
}
