"""Which URLs the server will call: refusals are checked without sending any traffic."""

from __future__ import annotations

import ipaddress

import pytest

from openlocker.core.errors import InvalidInput
from openlocker.webhooks.urls import AddressRefused, check_url, is_public, resolve_now

NOT_PUBLIC = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3:8443/hook",
    "https://10.0.0.7/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[fe80::1]/hook",
    "https://[fd00::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[64:ff9b::a00:1]/hook",
    "https://[2002:7f00:1::]/hook",
    "https://224.0.0.1/hook",
    "https://localhost/hook",
    "https://LocalHost:8443/hook",
]


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_private_loopback_and_link_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(AddressRefused, match="not a public address"):
        resolve_now(check_url(url, allow_private=False), allow_private=False)


def test_the_setting_lets_loopback_through() -> None:
    target = resolve_now(check_url("http://localhost:9/x", allow_private=True), allow_private=True)
    assert ipaddress.ip_address(target.address).is_loopback


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://example.com/hook", "must start with https://"),
        ("ftp://example.com/hook", "must start with https://"),
        ("https:///hook", "must name a host"),
        ("https://user:pass@example.com/hook", "user name or password"),
        ("https://example.com:99999/hook", "not valid"),
        ("https://example.com:port/hook", "not valid"),
        ("https://example.com/hook#frag", "#fragment"),
        ("example.com/hook", "must start with https://"),
    ],
)
def test_malformed_urls_are_refused_with_their_reason(url: str, detail: str) -> None:
    with pytest.raises(InvalidInput, match=detail) as refused:
        check_url(url, allow_private=False)
    assert refused.value.code == "invalid_webhook_url"
