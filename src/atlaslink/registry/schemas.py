"""API shapes of the registry. Fields a viewer may not see are null and their group is absent
from ``visible_groups``; entries whose existence is not shared are left out altogether."""

from __future__ import annotations

from datetime import date
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from atlaslink.sharing.policy import Audience, FieldGroup

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int
    pages: int


class Network(BaseModel):
    id: int
    code: str
    name: str
    description: str
    countries: list[str]


class NetworkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[A-Z][A-Z0-9-]{1,31}$")
    name: str = Field(min_length=2, max_length=200)
    description: str = Field(default="", max_length=2000)


class Membership(BaseModel):
    model_config = ConfigDict(extra="forbid")
    voting: bool = True


class CountryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iso2: str = Field(pattern=r"^[A-Z]{2}$")
    name: str = Field(min_length=2, max_length=100)
    status: Literal["eu", "associated", "other"]


class Country(BaseModel):
    iso2: str
    display_code: str
    name: str
    status: str
    networks: list[str]
    unit_count: int


class CapabilityType(BaseModel):
    id: int
    code: str
    kind: Literal["environment", "skill"]
    name: str
    description: str
    rtlt_id: str | None
    introduced_in: int
    retired_in: int | None


class CapabilityTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    kind: Literal["environment", "skill"]
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    rtlt_id: str | None = Field(default=None, max_length=32)


class CapabilityTypeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    rtlt_id: str | None = Field(default=None, max_length=32)
    retired: bool | None = None


class Taxonomy(BaseModel):
    version: int
    types: list[CapabilityType]


class Contact(BaseModel):
    kind: Literal["phone", "email", "radio"]
    label: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1, max_length=200)


class Transport(BaseModel):
    kind: Literal["helicopter", "aircraft", "armoured_vehicle", "boat"]
    description: str = Field(default="", max_length=300)
    quantity: int = Field(default=1, ge=1, le=1000)
    capacity_persons: int | None = Field(default=None, ge=0, le=10000)


class Capability(BaseModel):
    id: int
    type_code: str
    type_name: str
    kind: str
    # existence group
    may_deploy_abroad: bool
    may_carry_arms_abroad: bool
    may_carry_explosives_abroad: bool
    last_validated: date | None
    validated_exercise: str | None
    confirmed_on: date
    stale: bool
    # level group
    level: int | None
    # package group
    package_size: int | None
    self_sufficiency_hours: int | None
    # notice group
    notice_to_move_hours: int | None
    # Who keeps the entry confirmed (whoever saved it last): on the profile for the unit's own
    # people only, null for everyone else (the audit trail, for those with audit:read, still
    # names who made each change).
    owner: str | None = None


class CapabilityWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = Field(ge=0, le=3)
    package_size: int | None = Field(default=None, ge=0, le=1000)
    notice_to_move_hours: int | None = Field(default=None, ge=0, le=720)
    self_sufficiency_hours: int | None = Field(default=None, ge=0, le=2160)
    may_deploy_abroad: bool = False
    may_carry_arms_abroad: bool = False
    may_carry_explosives_abroad: bool = False
    last_validated: date | None = None
    validated_exercise: str | None = Field(default=None, max_length=200)


class UnitSummary(BaseModel):
    id: int
    code: str
    name: str
    country: str
    country_display: str
    network: str
    base_location: str
    latitude: float | None
    longitude: float | None
    languages: list[str]
    competent_authority: str
    visible_groups: list[FieldGroup]
    # Number of capability entries, when their existence is shared with the viewer.
    capability_count: int | None
    contacts: list[Contact] | None


class UnitDetail(UnitSummary):
    transport: list[Transport] | None
    capabilities: list[Capability]
    stale_count: int | None


class UnitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[A-Z]{2}-[A-Z0-9-]{2,36}$")
    name: str = Field(min_length=2, max_length=200)
    network: str = "ATLAS"
    country: str = Field(pattern=r"^[A-Z]{2}$")
    base_location: str = Field(min_length=1, max_length=200)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    languages: list[str] = Field(default_factory=list)
    competent_authority: str = Field(default="", max_length=300)

    @field_validator("languages")
    @classmethod
    def _iso639(cls, value: list[str]) -> list[str]:
        return _languages(value)


class UnitUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=2, max_length=200)
    base_location: str | None = Field(default=None, min_length=1, max_length=200)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    languages: list[str] | None = None
    competent_authority: str | None = Field(default=None, max_length=300)
    contacts: list[Contact] | None = None
    transport: list[Transport] | None = None

    @field_validator("languages")
    @classmethod
    def _iso639(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _languages(value)


def _languages(value: list[str]) -> list[str]:
    out: list[str] = []
    for code in value:
        code = code.strip().lower()
        if len(code) != 2 or not code.isalpha():
            raise ValueError(f"'{code}' is not an ISO 639-1 language code (two letters)")
        if code not in out:
            out.append(code)
    return out


class SharingRuleIO(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audience: Audience
    countries: list[str] = Field(default_factory=list)
    units: list[str] = Field(default_factory=list, description="unit codes")


class SharingAgreementIO(BaseModel):
    """A unit's whole sharing agreement: one rule per group of fields."""

    model_config = ConfigDict(extra="forbid")
    rules: dict[FieldGroup, SharingRuleIO]


class MatrixRow(BaseModel):
    unit: UnitSummary
    # capability type code -> level (null: existence shared, level not)
    cells: dict[str, int | None]


class Matrix(BaseModel):
    types: list[CapabilityType]
    rows: Page[MatrixRow]
