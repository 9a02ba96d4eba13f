"""docs/asyncapi.yaml as validators: one per channel, with the document's own references."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft7Validator, FormatChecker

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"
#: The schema of what each channel carries.
CHANNEL_SCHEMAS = {
    "commands": "Command",
    "answers": "Answer",
    "presence": "Presence",
    "heartbeat": "Heartbeat",
    "state": "StateSnapshot",
}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return loaded


def validator(schema: str) -> Draft7Validator:
    """A validator of ``#/components/schemas/<schema>`` that resolves the document's refs."""
    wrapper = {"$ref": f"#/components/schemas/{schema}", "components": document()["components"]}
    return Draft7Validator(wrapper, format_checker=FormatChecker())


def problems(channel: str, payload: bytes) -> list[str]:
    """Why ``payload`` breaks the contract of ``channel`` (empty when it keeps it)."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        return [f"not JSON: {error}"]
    return [error.message for error in validator(CHANNEL_SCHEMAS[channel]).iter_errors(data)]
