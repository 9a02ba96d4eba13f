"""The locker's touchscreen: one server-rendered page the kiosk serves at ``/`` of its UI
port, whose small script calls only the kiosk's own JSON API (``docs/kiosk.md``)."""
