"""Request and response models for organizations and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OrganizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["carrier", "retailer", "operator"]


class OrganizationOut(BaseModel):
    id: str
    name: str
    kind: str


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=50)


class ApiKeyInfo(BaseModel):
    """A key as it can be shown again: never the key itself."""

    id: str
    org_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyOut(ApiKeyInfo):
    key: str = Field(description="The key itself; shown this once and never again.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyInfo]
    next_cursor: str | None = None
