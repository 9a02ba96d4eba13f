"""The server's side of the MQTT fleet channel (``docs/fleet.md``): one consumer per network
records what kiosks say (presence, heartbeats, answers, state) and publishes their door
commands from the outbox; the routes open a door remotely and show a kiosk's presence."""
