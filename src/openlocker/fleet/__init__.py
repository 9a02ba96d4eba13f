"""The server's side of the locker channel: what kiosks sync and push, courier codes, alarms.

Kiosks talk to the server over HTTP (``docs/kiosk-sync.md``): they pull their site's
credentials, courier codes, expected parcels and door commands (``sync``), and push what
happened at the locker (``events``). Alarms (``alarms``) come from kiosks and from other
features. The MQTT channel lives in ``fleet.mqtt``.
"""
