"""``OPENLOCKER_MQTT_URL`` (and a kiosk's broker URL) as both ends read it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from openlocker.core.config import Settings
from openlocker.core.mqtt import Broker


def test_plain_tls_and_credentials() -> None:
    assert Broker.from_url("mqtt://127.0.0.1") == Broker("127.0.0.1", 1883)
    secured = Broker.from_url("mqtts://sit_1:p%40ss%3Aword@broker.example.net?ca=/etc/ca.pem")
    assert (secured.host, secured.port, secured.tls) == ("broker.example.net", 8883, True)
    assert (secured.username, secured.password) == ("sit_1", "p@ss:word")
    assert secured.ca_file == "/etc/ca.pem"
    assert Broker.from_url("mqtt://h:1884?keepalive=10").keepalive == 10
    assert "tls_context" in Broker.from_url("mqtts://broker").client_options()
    assert "tls_context" not in Broker.from_url("mqtt://h").client_options()


@pytest.mark.parametrize(
    "url", ["http://broker", "mqtt://", "mqtt://h?tls=1", "broker:1883", "mqtt://h:notaport"]
)
def test_a_url_that_is_not_one_is_refused_when_settings_are_read(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(mqtt_url=url)
