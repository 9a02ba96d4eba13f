"""``python -m openlocker.kiosk``: the kiosk without the server's command (a lighter process)."""

from openlocker.kiosk.cli import main

main()
