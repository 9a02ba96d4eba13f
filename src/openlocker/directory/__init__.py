"""A site's recipient directory and open deposit.

Residential and office sites keep a directory of the people who get parcels there: imported
from CSV (``openlocker directory import``), kept in sync by an identity provider over SCIM 2.0
(``directory.scim``), or edited by operators. A courier of a carrier with no integration finds
the recipient at the kiosk (``search``) and drops the parcel in (``open_deposit``): it becomes
a parcel of the ordinary lifecycle, and the recipient is told as for any other.
"""
