"""QR pictures of pickup tokens: read back as a phone's camera app would read them.

The PNG is decoded by Pillow (not by the code that wrote it) and the symbol by zxing-cpp's
reader, which is its own implementation of the standard, apart from the encoder (zint)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from openlocker.access.credentials import issue_qr
from openlocker.access.qr_image import QR_MASK, QUIET_ZONE, qr_modules, qr_png, qr_svg
from openlocker.core.ids import new_id
from openlocker.core.keys import Keyring

KEYRING = Keyring("test-secret-key")


def token(parcel_id: str | None = None, site_id: str | None = None) -> str:
    site_id = site_id or new_id("sit")
    return issue_qr(
        KEYRING.site_signing_key(site_id, 1),
        parcel_id=parcel_id or new_id("prc"),
        site_id=site_id,
        expires_at=datetime(2026, 3, 2, tzinfo=UTC) + timedelta(hours=72),
    )


def read(image: Image.Image) -> zxingcpp.Result:
    [found] = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return found


TOKENS = {
    "usual ids": token(),
    # Ids of another shape take the text format: a longer token, a larger version.
    "text ids": token("parcel-" + "x" * 60, "site-" + "y" * 40),
}


@pytest.mark.parametrize("name", TOKENS)
def test_the_png_reads_back_as_the_token_in_a_standard_symbol(name: str) -> None:
    value = TOKENS[name]
    png = qr_png(value)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "1"
    found = read(image)
    assert found.text == value
    # Model 2 without ECI, level M, the fixed mask, the smallest version that holds it.
    assert found.symbology_identifier == "]Q1"
    assert found.ec_level == "M" and found.extra["DataMask"] == QR_MASK
    version = int(found.extra["Version"])
    assert qr_modules(value).shape == (17 + 4 * version,) * 2
    if name == "usual ids":
        assert version == 8  # 139 characters at level M


def test_the_png_is_the_symbol_scaled_with_its_quiet_zone() -> None:
    value = TOKENS["usual ids"]
    modules = qr_modules(value)
    pixels = np.asarray(Image.open(io.BytesIO(qr_png(value, scale=3))).convert("L"))
    side = modules.shape[0] + 2 * QUIET_ZONE
    assert pixels.shape == (side * 3, side * 3)
    dark = (pixels[1::3, 1::3] == 0).astype(np.uint8)  # the middle pixel of each module
    assert (dark == np.pad(modules, QUIET_ZONE)).all()
    assert (pixels.reshape(side, 3, side, 3).min(axis=(1, 3)) == pixels[::3, ::3]).all()


def test_one_token_always_gives_one_picture() -> None:
    value = TOKENS["usual ids"]
    assert qr_png(value) == qr_png(value)
    assert qr_svg(value, "QR") == qr_svg(value, "QR")


def test_the_svg_draws_every_dark_module_and_nothing_else() -> None:
    value = TOKENS["usual ids"]
    svg = qr_svg(value, "QR <code> & more")
    assert svg.startswith('<svg role="img" viewBox="0 0 57 57" class="qr"')
    assert "<title>QR &lt;code&gt; &amp; more</title>" in svg
    drawn = np.zeros((57, 57), np.uint8)
    dark_path = re.search(r'<path fill="#000" d="([^"]*)"', svg)
    assert dark_path is not None
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", dark_path.group(1)):
        drawn[int(y), int(x) : int(x) + int(width)] += 1
    assert (drawn == np.pad(qr_modules(value), QUIET_ZONE)).all()
    # Nothing in the path but those runs.
    assert re.fullmatch(r"(M\d+ \d+h\d+v1h-\d+z)+", dark_path.group(1))
