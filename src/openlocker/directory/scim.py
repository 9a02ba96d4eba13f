"""SCIM 2.0 (RFC 7643, RFC 7644): identity providers keep a site's directory as ``/Users``.

The base URL is ``/scim/v2`` for a key that keeps one site's directory (scope
``directory:<site_id>``), or ``/scim/v2/sites/<site_id>`` for any key that keeps that site's
(docs/decisions: one key per site). A User is a directory entry: ``userName``, ``name``,
``displayName``, ``emails``, ``phoneNumbers``, ``preferredLanguage``, ``active``,
``externalId``, and the unit in the extension ``EXTENSION`` (else the enterprise extension's
``department``). Attributes an entry does not hold (``password``, ``groups``, ``title`` …) are
accepted and dropped. Errors are SCIM errors (``application/scim+json`` with ``scimType``).

PATCH takes the operations of RFC 7644 section 3.5.2 in the shapes Okta and Microsoft Entra
ID send them: ``op`` in any case, a path or a value object without one (whose keys may be
paths, ``name.givenName``, or carry a schema URN), filters on multi-valued attributes
(``emails[type eq "work"].value``), and ``"False"`` for ``false``. It applies them to the
User as it is, then stores the result as a PUT would.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.api.errors import error_response
from openlocker.core.context import Context
from openlocker.core.errors import DomainError, InvalidInput, Unauthorized
from openlocker.directory import service
from openlocker.directory.schemas import EntryIn
from openlocker.directory.service import EntryRow
from openlocker.orgs.service import Principal

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#: Our extension (named as Entra ID asks of custom ones): ``unit``, the flat or office.
EXTENSION = "urn:ietf:params:scim:schemas:extension:openlocker:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEDIA_TYPE = "application/scim+json"
#: Users one page answers at most (``count`` above it is cut to it).
MAX_COUNT = 200
#: Multi-valued attributes of a User (RFC 7643 section 4.1.2).
_MULTI = {"emails", "phonenumbers", "ims", "photos", "addresses", "groups", "entitlements", "roles"}
_EMAIL = TypeAdapter(EmailStr)


class ScimError(DomainError):
    """A refusal in SCIM's terms: an HTTP status and, for a 400 or 409, a ``scimType``."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail, code=scim_type or f"scim_{status}")
        self.status = status
        self.scim_type = scim_type


def _invalid(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


# --- errors and responses -----------------------------------------------------------------


def scim_json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _error_body(status: int, detail: str, scim_type: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type is not None:
        body["scimType"] = scim_type
    return body


#: Our domain codes with a SCIM status and ``scimType`` of their own.
_CODES: dict[str, tuple[int, str | None]] = {
    "duplicate_external_id": (409, "uniqueness"),
    "duplicate_email": (409, "uniqueness"),
    "duplicate_user_name": (409, "uniqueness"),
    "version_mismatch": (412, None),
}


def scim_error(error: Exception) -> Response:
    """The SCIM error answering ``error`` (any exception a SCIM route raised)."""
    headers: dict[str, str] = {}
    if isinstance(error, ScimError):
        status, detail, scim_type = error.status, error.detail, error.scim_type
    elif isinstance(error, DomainError):
        status, scim_type = _CODES.get(error.code, (error.status, None))
        detail = error.detail
        if isinstance(error, InvalidInput):
            status, scim_type = 400, "invalidValue"
        if isinstance(error, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="scim"'
        headers.update(error.headers)
    elif isinstance(error, RequestValidationError):
        status, scim_type = 400, "invalidSyntax"
        detail = "The request body is not a JSON object a SCIM server can read."
    elif isinstance(error, IntegrityError):
        status, scim_type = 409, "uniqueness"
        detail = "Another request wrote the same userName, email or externalId; retry."
    elif isinstance(error, HTTPException):
        status, scim_type, detail = error.status_code, None, str(error.detail)
    else:
        # The API's own answer (and log line) for database trouble and bugs.
        answer = error_response(error)
        status, scim_type = answer.status_code, None
        detail = orjson.loads(bytes(answer.body)).get("detail", "")
        headers.update({k: v for k, v in answer.headers.items() if k.lower() == "retry-after"})
    return scim_json(_error_body(status, detail, scim_type), status, headers)


class ScimRoute(APIRoute):
    """A route whose every failure, from authentication to the database, is a SCIM error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def scim_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:
                return scim_error(error)

        return scim_handler


# --- Users as JSON ------------------------------------------------------------------------


def version_tag(entry: EntryRow) -> str:
    return f'W/"{entry.version}"'


def to_resource(entry: EntryRow, users_url: str) -> dict[str, Any]:
    """The entry as a SCIM User (attributes it has no value for are left out)."""
    resource: dict[str, Any] = {
        "schemas": [USER, EXTENSION] if entry.unit else [USER],
        "id": entry.id,
        "userName": entry.scim_user_name,
    }
    if entry.external_id is not None:
        resource["externalId"] = entry.external_id
    name = {
        key: value
        for key, value in (("givenName", entry.given_name), ("familyName", entry.family_name))
        if value is not None
    }
    if name:
        resource["name"] = name
    resource["displayName"] = entry.display_name
    if entry.email is not None:
        resource["emails"] = [{"value": entry.email, "type": "work", "primary": True}]
    if entry.phone is not None:
        resource["phoneNumbers"] = [{"value": entry.phone, "type": "mobile", "primary": True}]
    if entry.language is not None:
        resource["preferredLanguage"] = entry.language
    resource["active"] = entry.active
    if entry.unit is not None:
        resource[EXTENSION] = {"unit": entry.unit}
    resource["meta"] = {
        "resourceType": "User",
        "created": entry.created_at.isoformat(),
        "lastModified": entry.updated_at.isoformat(),
        "location": f"{users_url}/{entry.id}",
        "version": version_tag(entry),
    }
    return resource


def _folded(value: Any, where: str) -> dict[str, Any]:
    """An object's members by case-folded name (SCIM attribute names ignore case)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be an object.", "invalidSyntax")
    return {str(k).casefold(): v for k, v in value.items()}


def _text(value: Any, where: str) -> str | None:
    """A string attribute's value; blank is none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"{where} must be a string.")
    return value.strip() or None


def _truth(value: Any, where: str) -> bool:
    """A boolean, also as Entra ID's ``"True"`` and ``"False"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _invalid(f"{where} must be true or false.")


def _pick(values: Any, where: str, preferred: str) -> str | None:
    """The value of a multi-valued attribute to keep: the ``primary`` one, else the one of
    type ``preferred``, else the first."""
    if values is None:
        return None
    if isinstance(values, dict):
        values = [values]
    if not isinstance(values, list):
        raise _invalid(f"{where} must be a list.", "invalidSyntax")
    items = [_folded(v, where) for v in values]
    items = [item for item in items if _text(item.get("value"), f"{where}.value")]

    def order(item: dict[str, Any]) -> int:
        if item.get("primary") is True or str(item.get("primary")).lower() == "true":
            return 0
        return 1 if str(item.get("type", "")).lower() == preferred else 2

    items.sort(key=order)
    return _text(items[0]["value"], f"{where}.value") if items else None


def _language(value: Any) -> str | None:
    """``preferredLanguage`` or ``locale`` (``en-US``, ``pl_PL``, ``de``) as a language tag."""
    if not isinstance(value, str):
        return None
    tag = value.split(",")[0].split(";")[0].strip().replace("_", "-")
    language, _, region = tag.partition("-")
    if len(language) != 2 or not language.isalpha():
        return None
    if len(region) == 2 and region.isalpha():
        return f"{language.lower()}-{region.upper()}"
    return language.lower()


#: Entry fields by the SCIM attribute that carries them, for error messages.
_SCIM_NAMES = {
    "display_name": "displayName",
    "email": "emails",
    "phone": "phoneNumbers",
    "language": "preferredLanguage",
    "external_id": "externalId",
    "given_name": "name.givenName",
    "family_name": "name.familyName",
    "user_name": "userName",
    "unit": f"{EXTENSION}:unit",
}


def from_resource(resource: Any, *, unit_if_absent: str | None = None) -> EntryIn:
    """The entry a SCIM User stands for. Its unit comes from ``EXTENSION``, else from the
    enterprise extension's ``department``; with neither, ``unit_if_absent`` stays (a PUT from
    a provider that does not send units keeps the one the operator set)."""
    user = _folded(resource, "The User")
    user_name = _text(user.get("username"), "userName")
    if user_name is None:
        raise _invalid("userName is required.")
    name = _folded(user.get("name"), "name")
    given = _text(name.get("givenname"), "name.givenName")
    family = _text(name.get("familyname"), "name.familyName")
    display = (
        _text(user.get("displayname"), "displayName")
        or _text(name.get("formatted"), "name.formatted")
        or " ".join(part for part in (given, family) if part)
        or user_name
    )
    email = _pick(user.get("emails"), "emails", "work")
    if email is None:
        # Okta's and Entra ID's userName is most often the user's address.
        try:
            email = _EMAIL.validate_python(user_name)
        except ValidationError:
            email = None
    extension = user.get(EXTENSION.casefold())
    enterprise = _folded(user.get(ENTERPRISE.casefold()), ENTERPRISE)
    if extension is not None:
        unit = _text(_folded(extension, EXTENSION).get("unit"), f"{EXTENSION}:unit")
    elif "department" in enterprise:
        unit = _text(enterprise["department"], f"{ENTERPRISE}:department")
    else:
        unit = unit_if_absent
    values = {
        "display_name": display,
        "unit": unit,
        "email": email,
        "phone": _pick(user.get("phonenumbers"), "phoneNumbers", "mobile"),
        "language": _language(user.get("preferredlanguage") or user.get("locale")),
        "external_id": _text(user.get("externalid"), "externalId"),
        "given_name": given,
        "family_name": family,
        "user_name": user_name,
        "active": True if user.get("active") is None else _truth(user["active"], "active"),
    }
    try:
        return EntryIn.model_validate(values)
    except ValidationError as error:
        raise _invalid(
            "; ".join(
                f"{_SCIM_NAMES.get(str(e['loc'][0]), 'User') if e['loc'] else 'User'}: "
                + e["msg"].removeprefix("Value error, ")
                for e in error.errors()
            )
        ) from None


# --- PATCH --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """A PATCH path: ``attr[filter].sub`` in ``schema`` (None: the core User); ``attr``
    empty for the whole of an extension."""

    schema: str | None
    attr: str
    filter: tuple[str, Any] | None = None
    sub: str | None = None


_PATH = re.compile(
    r"^(?P<attr>[A-Za-z$][\w$-]*)(?:\[(?P<filter>[^\]]*)\])?(?:\.(?P<sub>[A-Za-z$][\w$-]*))?$"
)
_COMPARISON = re.compile(
    r"^\s*(?P<attr>[^\s\[]+(?:\[[^\]]*\])?(?:\.\S+)?)\s+(?P<op>[A-Za-z]+)\s+(?P<value>.+?)\s*$"
)


def _literal(text: str) -> Any:
    """A filter's comparison value: a JSON string (or one in single quotes), a boolean."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        value = json.loads(text)
    except ValueError:
        raise _invalid(
            f"{text!r} is not a value a filter compares with.", "invalidFilter"
        ) from None
    if not isinstance(value, str):
        raise _invalid(f"{text!r} is not a value a filter compares with.", "invalidFilter")
    return value


def _comparison(text: str) -> tuple[str, Any]:
    """``attr eq value``; the one operator Okta and Entra ID send."""
    match = _COMPARISON.match(text)
    if match is None:
        raise _invalid(f"Cannot read the filter {text!r}.", "invalidFilter")
    if match["op"].lower() != "eq":
        raise _invalid(f"Only eq comparisons are supported, not {match['op']!r}.", "invalidFilter")
    return match["attr"], _literal(match["value"])


_SCHEMAS = (USER, ENTERPRISE, EXTENSION)


def parse_path(text: str) -> Path:
    """A PATCH operation's ``path`` (RFC 7644 section 3.5.2), a schema URN prefix allowed."""
    rest, schema = text.strip(), None
    if rest.lower().startswith("urn:"):
        known = next((s for s in _SCHEMAS if rest.lower().startswith(s.lower())), None)
        if known is None:
            head, _, tail = rest.rpartition(":")
            known, rest = head, tail
        else:
            rest = rest[len(known) :].lstrip(":")
        schema = None if known == USER else known
        if not rest:
            return Path(schema, "")
    match = _PATH.match(rest)
    if match is None:
        raise _invalid(f"Cannot read the path {text!r}.", "invalidPath")
    condition = _comparison(match["filter"]) if match["filter"] is not None else None
    return Path(schema, match["attr"], condition, match["sub"])


def _key(container: dict[str, Any], name: str) -> str:
    """The member of ``container`` called ``name`` in any case, else ``name`` itself."""
    folded = name.casefold()
    return next((k for k in container if k.casefold() == folded), name)


def _matches(item: Any, condition: tuple[str, Any]) -> bool:
    if not isinstance(item, dict):
        return False
    attr, wanted = condition
    value = item.get(_key(item, attr))
    if isinstance(wanted, str) and isinstance(value, str):
        return value.casefold() == wanted.casefold()
    if isinstance(wanted, bool):
        return value is wanted or str(value).lower() == str(wanted).lower()
    return bool(value == wanted)


def _container(user: dict[str, Any], path: Path) -> dict[str, Any]:
    if path.schema is None:
        return user
    key = _key(user, path.schema)
    container = user.setdefault(key, {})
    if not isinstance(container, dict):
        raise _invalid(f"{path.schema} is not an object.", "invalidPath")
    return container


def _remove(user: dict[str, Any], path: Path, value: Any) -> None:
    if path.attr == "":
        user.pop(_key(user, path.schema or ""), None)
        return
    container = _container(user, path)
    key = _key(container, path.attr)
    current = container.get(key)
    if path.filter is None and path.sub is None:
        if isinstance(current, list) and isinstance(value, list):
            # Entra ID's older form: the values to remove given as a value.
            gone = {str(_folded(v, path.attr).get("value")).casefold() for v in value}
            container[key] = [
                item
                for item in current
                if str(_folded(item, path.attr).get("value")).casefold() not in gone
            ]
        else:
            container.pop(key, None)
        return
    items = current if isinstance(current, list) else [current] if isinstance(current, dict) else []
    chosen = [i for i in items if path.filter is None or _matches(i, path.filter)]
    if path.sub is None:
        container[key] = [i for i in items if i not in chosen]
        return
    for item in chosen:
        item.pop(_key(item, path.sub), None)


def _set(user: dict[str, Any], path: Path, value: Any, *, add: bool) -> None:
    if path.attr == "":
        if not isinstance(value, dict):
            raise _invalid(f"The value for {path.schema} must be an object.")
        for name, member in value.items():
            _set(user, Path(path.schema, str(name)), member, add=add)
        return
    container = _container(user, path)
    key = _key(container, path.attr)
    current = container.get(key)
    if path.filter is None and path.sub is None:
        if key.casefold() in _MULTI or isinstance(current, list):
            items = value if isinstance(value, list) else [value]
            container[key] = [*(current or []), *items] if add else items
        elif isinstance(value, dict) and isinstance(current, dict):
            for name, member in value.items():
                current[_key(current, str(name))] = member
        else:
            container[key] = value
        return
    if path.filter is None:
        assert path.sub is not None
        if isinstance(current, list):
            # ``emails.value``: the primary value, else the first.
            if not current:
                current.append({})
            target = next((i for i in current if _matches(i, ("primary", True))), current[0])
        else:
            target = container.setdefault(key, {}) if current is None else current
        if not isinstance(target, dict):
            raise _invalid(f"{path.attr} has no sub-attributes.", "invalidPath")
        target[_key(target, path.sub)] = value
        return
    items = container.setdefault(key, []) if current is None else current
    if not isinstance(items, list):
        raise _invalid(f"{path.attr} is not multi-valued.", "invalidPath")
    chosen = [i for i in items if _matches(i, path.filter)]
    if not chosen:
        # Entra ID replaces ``emails[type eq "work"].value`` of a user who has none yet.
        chosen = [{path.filter[0]: path.filter[1]}]
        items.append(chosen[0])
    for item in chosen:
        if path.sub is not None:
            item[_key(item, path.sub)] = value
        elif isinstance(value, dict):
            item.update(value)
        else:
            raise _invalid(f"The value for {path.attr}[…] must be an object.")


def apply_patch(resource: dict[str, Any], body: Any) -> dict[str, Any]:
    """The User after a PatchOp's operations, applied in order (RFC 7644 section 3.5.2)."""
    operations = _folded(body, "The PatchOp").get("operations")
    if not isinstance(operations, list) or not operations:
        raise _invalid("Operations must be a list of operations.", "invalidSyntax")
    user = copy.deepcopy(resource)
    for raw in operations:
        operation = _folded(raw, "An operation")
        kind = str(operation.get("op", "")).lower()
        if kind not in ("add", "replace", "remove"):
            raise _invalid(f"op must be add, replace or remove, not {kind!r}.", "invalidSyntax")
        path, value = operation.get("path"), operation.get("value")
        if path is not None and not isinstance(path, str):
            raise _invalid("path must be a string.", "invalidPath")
        if path and kind == "remove":
            _remove(user, parse_path(path), value)
        elif path:
            _set(user, parse_path(path), value, add=kind == "add")
        elif kind == "remove":
            raise _invalid("remove needs a path.", "noTarget")
        elif isinstance(value, dict):
            # Okta's and Entra ID's form: members to set, whose names may be paths.
            for name, member in value.items():
                _set(user, parse_path(str(name)), member, add=kind == "add")
        else:
            raise _invalid("Without a path, the value must be an object.", "invalidValue")
    return user


def _unit_member(user: dict[str, Any], schema: str, name: str) -> Any:
    extension = user.get(_key(user, schema))
    return extension.get(_key(extension, name)) if isinstance(extension, dict) else None


def patched(entry: EntryRow, body: Any, users_url: str) -> EntryIn:
    """The entry after a PatchOp. A unit set by the patch through the enterprise extension's
    ``department`` (Entra ID's default mapping) wins over the one it left unchanged."""
    before = to_resource(entry, users_url)
    after = apply_patch(before, body)
    department = _unit_member(after, ENTERPRISE, "department")
    unit = _unit_member(after, EXTENSION, "unit")
    if department is not None and unit == _unit_member(before, EXTENSION, "unit"):
        after.pop(_key(after, EXTENSION), None)
    return from_resource(after)


# --- filters ------------------------------------------------------------------------------

#: What a list filter may compare, by case-folded attribute (brackets on emails ignored).
_FILTERABLE = {
    "username": "user_name",
    "externalid": "external_id",
    "id": "id",
    "displayname": "display_name",
    "active": "active",
    "emails": "email",
    "emails.value": "email",
}


def _split_and(text: str) -> list[str]:
    """The comparisons of ``a eq "x" and b eq "y"`` (outside quotes and brackets)."""
    parts, start, depth, quote, i = [], 0, 0, "", 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[]":
            depth += 1 if char == "[" else -1
        elif depth == 0 and text[i : i + 5].lower() == " and ":
            parts.append(text[start:i])
            start = i = i + 5
            continue
        i += 1
    parts.append(text[start:])
    return parts


def parse_filter(text: str) -> list[tuple[str, Any]]:
    """A list filter as ``(entry field, value)`` pairs that must all hold: ``eq`` on
    ``userName``, ``externalId``, ``id``, ``displayName``, ``active`` or ``emails``, joined
    by ``and`` (what Okta and Entra ID send); ``invalidFilter`` for the rest."""
    where = []
    for part in _split_and(text):
        attr, value = _comparison(part)
        plain = re.sub(r"\[[^\]]*\]", "", attr).casefold().removeprefix(USER.casefold() + ":")
        field = _FILTERABLE.get(plain)
        if field is None:
            raise _invalid(f"Cannot filter on {attr!r}.", "invalidFilter")
        if (field == "active") != isinstance(value, bool):
            raise _invalid(
                f"{attr} compares with a {'boolean' if field == 'active' else 'string'}.",
                "invalidFilter",
            )
        where.append((field, value))
    return where


def _number(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _invalid(f"{name} must be a whole number.") from None


def _version(if_match: str | None) -> int | None:
    """The entry version an ``If-Match`` header asks for (None: any)."""
    if if_match is None or if_match.strip() == "*":
        return None
    digits = if_match.strip().removeprefix("W/").strip('"')
    if not digits.isdigit():
        raise ScimError(412, "If-Match does not name a version of this User.")
    return int(digits)


# --- routes -------------------------------------------------------------------------------

SCIM_BODY = Annotated[Any, Body()]
IF_MATCH = Annotated[str | None, Header(alias="If-Match")]


def _users_url(ctx: Context, request: Request) -> str:
    path = request.url.path
    return ctx.settings.base_url.rstrip("/") + path[: path.index("/Users") + len("/Users")]


def _site(principal: Principal, request: Request) -> str:
    return service.scim_site(principal, request.path_params.get("site_id"))


def _user(ctx: Context, request: Request, entry: EntryRow, status: int = 200) -> Response:
    headers = {"ETag": version_tag(entry)}
    resource = to_resource(entry, _users_url(ctx, request))
    if status == 201:
        headers["Location"] = resource["meta"]["location"]
    return scim_json(resource, status, headers)


users = APIRouter(route_class=ScimRoute)


@users.get("/Users")
def list_users(
    request: Request,
    ctx: CtxDep,
    principal: PrincipalDep,
    scim_filter: Annotated[str | None, Query(alias="filter")] = None,
    start_index: Annotated[str | None, Query(alias="startIndex")] = None,
    count: str | None = None,
) -> Response:
    where = parse_filter(scim_filter) if scim_filter else []
    start = max(1, _number(start_index, "startIndex", 1))
    size = min(max(0, _number(count, "count", MAX_COUNT)), MAX_COUNT)
    site = _site(principal, request)
    total, entries = service.find_entries(ctx, principal, site, where, offset=start - 1, limit=size)
    url = _users_url(ctx, request)
    return scim_json(
        {
            "schemas": [LIST],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": len(entries),
            "Resources": [to_resource(e, url) for e in entries],
        }
    )


@users.post("/Users")
def create_user(
    request: Request, body: SCIM_BODY, ctx: CtxDep, principal: PrincipalDep
) -> Response:
    site = _site(principal, request)
    entry = service.create_entry(ctx, principal, site, from_resource(body), source="scim")
    return _user(ctx, request, entry, 201)


@users.get("/Users/{entry_id}")
def get_user(entry_id: str, request: Request, ctx: CtxDep, principal: PrincipalDep) -> Response:
    return _user(
        ctx, request, service.get_entry(ctx, principal, _site(principal, request), entry_id)
    )


def _modified(
    ctx: Context,
    request: Request,
    principal: Principal,
    entry_id: str,
    change: Callable[[EntryRow], EntryIn],
    if_match: str | None,
) -> Response:
    """A PUT's or PATCH's answer: the User after ``change``, applied to it as stored."""
    site = _site(principal, request)
    version = _version(if_match)
    entry = service.modify_entry(
        ctx, principal, site, entry_id, change, source="scim", version=version
    )
    return _user(ctx, request, entry)


@users.put("/Users/{entry_id}")
def replace_user(
    entry_id: str,
    request: Request,
    body: SCIM_BODY,
    ctx: CtxDep,
    principal: PrincipalDep,
    if_match: IF_MATCH = None,
) -> Response:
    return _modified(
        ctx,
        request,
        principal,
        entry_id,
        lambda entry: from_resource(body, unit_if_absent=entry.unit),
        if_match,
    )


@users.patch("/Users/{entry_id}")
def patch_user(
    entry_id: str,
    request: Request,
    body: SCIM_BODY,
    ctx: CtxDep,
    principal: PrincipalDep,
    if_match: IF_MATCH = None,
) -> Response:
    url = _users_url(ctx, request)
    return _modified(
        ctx, request, principal, entry_id, lambda entry: patched(entry, body, url), if_match
    )


@users.delete("/Users/{entry_id}", status_code=204)
def delete_user(
    entry_id: str,
    request: Request,
    ctx: CtxDep,
    principal: PrincipalDep,
    if_match: IF_MATCH = None,
) -> Response:
    site = _site(principal, request)
    service.delete_entry(ctx, principal, site, entry_id, source="scim", version=_version(if_match))
    return Response(status_code=204)


SERVICE_PROVIDER_CONFIG = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
    "documentationUri": "https://openlocker.dev/docs/directory",
    "patch": {"supported": True},
    "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
    "filter": {"supported": True, "maxResults": MAX_COUNT},
    "changePassword": {"supported": False},
    "sort": {"supported": False},
    "etag": {"supported": True},
    "authenticationSchemes": [
        {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "An OpenLocker API key with the scope directory:<site_id>.",
            "primary": True,
        }
    ],
    "meta": {"resourceType": "ServiceProviderConfig"},
}
USER_RESOURCE_TYPE = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
    "id": "User",
    "name": "User",
    "endpoint": "/Users",
    "description": "Someone who gets parcels at the site",
    "schema": USER,
    "schemaExtensions": [
        {"schema": EXTENSION, "required": False},
        {"schema": ENTERPRISE, "required": False},
    ],
    "meta": {"resourceType": "ResourceType"},
}


def _attribute(name: str, kind: str = "string", **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "multiValued": False,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
        **more,
    }


def _multi(name: str) -> dict[str, Any]:
    return _attribute(
        name,
        "complex",
        multiValued=True,
        subAttributes=[_attribute("value"), _attribute("type"), _attribute("primary", "boolean")],
    )


SCHEMAS = [
    {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER,
        "name": "User",
        "description": "A directory entry",
        "attributes": [
            _attribute("userName", required=True, uniqueness="server"),
            _attribute(
                "name",
                "complex",
                subAttributes=[_attribute("givenName"), _attribute("familyName")],
            ),
            _attribute("displayName"),
            _multi("emails"),
            _multi("phoneNumbers"),
            _attribute("preferredLanguage"),
            _attribute("active", "boolean"),
            _attribute("externalId", caseExact=True),
        ],
        "meta": {"resourceType": "Schema", "location": f"/Schemas/{USER}"},
    },
    {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": EXTENSION,
        "name": "OpenLocker",
        "description": "Where at the site the parcels go",
        "attributes": [_attribute("unit", description="The flat or office")],
        "meta": {"resourceType": "Schema", "location": f"/Schemas/{EXTENSION}"},
    },
]


def _listed(resources: list[dict[str, Any]]) -> Response:
    return scim_json(
        {
            "schemas": [LIST],
            "totalResults": len(resources),
            "startIndex": 1,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }
    )


@users.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    return scim_json(SERVICE_PROVIDER_CONFIG)


@users.get("/ResourceTypes")
def resource_types() -> Response:
    return _listed([USER_RESOURCE_TYPE])


@users.get("/ResourceTypes/User")
def user_resource_type() -> Response:
    return scim_json(USER_RESOURCE_TYPE)


@users.get("/Schemas")
def schemas() -> Response:
    return _listed(SCHEMAS)


@users.get("/Schemas/{schema_id}")
def one_schema(schema_id: str) -> Response:
    found = next((s for s in SCHEMAS if s["id"] == schema_id), None)
    if found is None:
        raise ScimError(404, f"No schema {schema_id!r}.")
    return scim_json(found)


@users.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(rest: str) -> Response:
    raise ScimError(404, f"No SCIM endpoint /{rest}.")


router = APIRouter(include_in_schema=False)
# The site's own base first: the plain base's catch-all would take its paths.
router.include_router(users, prefix="/scim/v2/sites/{site_id}")
router.include_router(users, prefix="/scim/v2")
