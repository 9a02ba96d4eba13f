"""The picture of a QR token: one encoding, drawn as a PNG (emails) or an SVG (the pickup page).

The symbol is a standard QR Code (model 2, ISO/IEC 18004) at error correction level M, with
no ECI, its version the smallest that holds the token (8 for a usual 139-character token),
and always the data mask ``QR_MASK``. Any of the eight masks is valid for a reader; choosing
the "best" one costs the encoder a score of all eight (16 ms in segno's pure Python, 0.3 ms
in zint), and one fixed mask keeps the picture of a token the same wherever it is shown.
zxing-cpp encodes it (through zint, compiled), in about 0.05 ms; the PNG and the SVG are
written here from the module matrix. ``tests/access/test_qr_image.py`` reads every kind of
picture back with Pillow and zxing-cpp's reader.
"""

from __future__ import annotations

import struct
import zlib
from html import escape

import numpy as np
import numpy.typing as npt
import zxingcpp

#: The data mask of every QR picture (ISO/IEC 18004 pattern 0: (row + column) mod 2 == 0).
QR_MASK = 0
#: Error correction level M: about 15% of the symbol can be unreadable.
QR_ERROR_LEVEL = "M"
#: The quiet zone around the symbol, in modules, as the standard asks.
QUIET_ZONE = 4


def qr_modules(token: str) -> npt.NDArray[np.uint8]:
    """The QR symbol of ``token`` as a square matrix, 1 for a dark module, without quiet zone."""
    barcode = zxingcpp.create_barcode(
        token, zxingcpp.BarcodeFormat.QRCode, ec_level=QR_ERROR_LEVEL, data_mask=QR_MASK
    )
    light = np.asarray(barcode.to_image(scale=1, add_quiet_zones=False))
    dark: npt.NDArray[np.uint8] = (light == 0).astype(np.uint8)
    return dark


def qr_png(token: str, *, scale: int = 5, border: int = QUIET_ZONE) -> bytes:
    """The QR code of ``token`` as a 1-bit greyscale PNG, ``scale`` pixels a module."""
    modules = np.pad(qr_modules(token), border)
    # One packed pixel row per module row; 1 is a dark module, a black (0) pixel.
    rows = np.packbits(modules.repeat(scale, 1) ^ 1, axis=1)
    count, width = rows.shape
    lines = np.zeros((count, scale, width + 1), np.uint8)
    lines[:, 0, 1:] = rows  # filter type 0 (None): the pixels as they are
    # Filter type 2 (Up) and zero bytes: the same pixels as the line above. Compressing
    # zeros is fast, where the repeated rows themselves cost zlib twice the time.
    lines[:, 1:, 0] = 2
    size = count * scale
    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(lines.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def qr_svg(token: str, title: str, *, border: int = QUIET_ZONE, css_class: str = "qr") -> str:
    """The QR code of ``token`` as an inline SVG image named ``title`` (escaped here), one
    unit a module: it scales to any size, and each row's dark runs are one path segment."""
    modules = qr_modules(token)
    size = modules.shape[0] + 2 * border
    # A run starts where a row goes light→dark and ends where it goes dark→light.
    edges = np.diff(np.pad(modules, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    starts_y, starts_x = np.nonzero(edges == 1)
    _, ends_x = np.nonzero(edges == -1)
    path = "".join(
        f"M{x + border} {y + border}h{end - x}v1h-{end - x}z"
        for y, x, end in zip(starts_y.tolist(), starts_x.tolist(), ends_x.tolist(), strict=True)
    )
    return (
        f'<svg role="img" viewBox="0 0 {size} {size}" class="{escape(css_class)}"'
        ' shape-rendering="crispEdges" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<path fill="#fff" d="M0 0h{size}v{size}h-{size}z"/>'
        f'<path fill="#000" d="{path}"/></svg>'
    )
