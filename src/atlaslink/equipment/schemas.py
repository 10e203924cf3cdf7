"""API shapes of the equipment pool: ``Item``, ``ItemCreate``, ``ItemUpdate``, loans, calendars."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from atlaslink.sharing.policy import Audience


class Category(BaseModel):
    code: str
    name: str
    description: str
    retired: bool
    introduced_in: int


class CategoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    name: str = Field(min_length=2, max_length=200)
    description: str = Field(default="", max_length=2000)


class CategoryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=2, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    retired: bool | None = None


class Categories(BaseModel):
    version: int
    categories: list[Category]


class Sharing(BaseModel):
    """Who may see an item: one of the registry's audiences (DOMAIN.md §4)."""

    model_config = ConfigDict(extra="forbid")
    audience: Audience = Audience.OWN_UNIT
    countries: list[str] = Field(default_factory=list)
    units: list[str] = Field(default_factory=list, description="unit codes")

    @field_validator("countries")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return sorted({c.strip().upper() for c in v if c.strip()})

    @field_validator("units")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        return sorted({c.strip().upper() for c in v if c.strip()})

    @model_validator(mode="after")
    def _listed_needs_targets(self) -> Sharing:
        if self.audience is Audience.LISTED and not (self.countries or self.units):
            raise ValueError("a 'listed' audience needs at least one country or unit")
        if self.audience is not Audience.LISTED and (self.countries or self.units):
            raise ValueError("countries and units are listed only with the 'listed' audience")
        return self


class _ItemFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    quantity: int = Field(default=1, ge=1, le=10_000)
    serial_numbers: list[str] = Field(default_factory=list, max_length=10_000)
    location_name: str = Field(default="", max_length=200)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    weight_kg: float | None = Field(default=None, ge=0, le=100_000)
    length_cm: int | None = Field(default=None, ge=0, le=10_000)
    width_cm: int | None = Field(default=None, ge=0, le=10_000)
    height_cm: int | None = Field(default=None, ge=0, le=10_000)
    air_transportable: bool = False
    needs_vehicle: bool = False
    operator_training: str = Field(default="", max_length=2000)
    restrictions: str = Field(
        default="", max_length=2000, description="export or transit restrictions"
    )
    maintenance_due: date | None = None
    notes: str = Field(default="", max_length=4000)

    @field_validator("serial_numbers")
    @classmethod
    def _serials(cls, v: list[str]) -> list[str]:
        out = [s.strip() for s in v if s.strip()]
        if len(set(out)) != len(out):
            raise ValueError("serial numbers repeat")
        return out

    @model_validator(mode="after")
    def _serials_match_quantity(self) -> _ItemFields:
        if self.serial_numbers and len(self.serial_numbers) != self.quantity:
            raise ValueError(
                f"{len(self.serial_numbers)} serial numbers given for a quantity of "
                f"{self.quantity}: give one per piece, or none"
            )
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class ItemCreate(_ItemFields):
    ref: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    category: str
    sharing: Sharing = Field(default_factory=Sharing)
    unit: str | None = Field(default=None, description="unit code; default: your own unit")


class ItemUpdate(BaseModel):
    """Fields to change; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")
    category: str | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    quantity: int | None = Field(default=None, ge=1, le=10_000)
    serial_numbers: list[str] | None = None
    location_name: str | None = Field(default=None, max_length=200)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    weight_kg: float | None = Field(default=None, ge=0, le=100_000)
    length_cm: int | None = Field(default=None, ge=0, le=10_000)
    width_cm: int | None = Field(default=None, ge=0, le=10_000)
    height_cm: int | None = Field(default=None, ge=0, le=10_000)
    air_transportable: bool | None = None
    needs_vehicle: bool | None = None
    operator_training: str | None = Field(default=None, max_length=2000)
    restrictions: str | None = Field(default=None, max_length=2000)
    maintenance_due: date | None = None
    notes: str | None = Field(default=None, max_length=4000)
    status: Literal["available", "repair", "lost", "destroyed", "retired"] | None = None
    sharing: Sharing | None = None


class UnitRef(BaseModel):
    id: int
    code: str
    name: str
    country: str


class Item(BaseModel):
    id: int
    ref: str
    unit: UnitRef
    category: str
    category_name: str
    model: str
    quantity: int
    serial_numbers: list[str]
    location_name: str
    latitude: float | None
    longitude: float | None
    weight_kg: float | None
    length_cm: int | None
    width_cm: int | None
    height_cm: int | None
    air_transportable: bool
    needs_vehicle: bool
    operator_training: str
    restrictions: str
    maintenance_due: date | None
    status: str
    notes: str
    # Only for the owning unit: who may see the item.
    sharing: Sharing | None = None
    # Search results: distance and estimated road travel from the place searched from.
    distance_km: float | None = None
    eta_hours: float | None = None
    actions: list[str] = Field(default_factory=list)


class OperationRef(BaseModel):
    """The assistance request an operation reservation serves (for those who may see it)."""

    request_id: int
    reference: str
    title: str


class Period(BaseModel):
    """A busy period of an item's calendar. Who borrowed it is shown to the two units only;
    the operation it is held for, to those who may see that request."""

    id: int
    kind: Literal["loan", "maintenance"]
    starts_at: datetime
    ends_at: datetime
    status: str | None = None
    loan_id: int | None = None
    borrower: UnitRef | None = None
    note: str = ""
    operation: OperationRef | None = None


class MaintenanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_at: datetime
    ends_at: datetime
    note: str = Field(default="", max_length=300)


class LoanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_at: datetime
    ends_at: datetime
    purpose: Literal["exercise", "operation", "training"]
    purpose_note: str = Field(default="", max_length=2000)


class LoanStep(BaseModel):
    """Move a loan to ``to``; handovers record the condition and who signed on each side."""

    model_config = ConfigDict(extra="forbid")
    to: str
    condition: Literal["", "good", "fair", "damaged", "unusable"] = ""
    notes: str = Field(default="", max_length=4000)
    signed_owner: str = Field(default="", max_length=200)
    signed_borrower: str = Field(default="", max_length=200)
    reason: str = Field(default="", max_length=2000, description="for a decline")


class LoanEvent(BaseModel):
    id: int
    occurred_at: datetime
    from_status: str | None
    to_status: str
    actor: str
    condition: str
    notes: str
    signed_owner: str
    signed_borrower: str
    photos: list[int]


class Loan(BaseModel):
    id: int
    item_id: int
    item_ref: str
    item_model: str
    category: str
    owner: UnitRef
    borrower: UnitRef
    purpose: str
    purpose_note: str
    starts_at: datetime
    ends_at: datetime
    status: str
    overdue: bool
    requested_by: str
    decided_by: str | None
    decline_reason: str
    created_at: datetime
    events: list[LoanEvent] = Field(default_factory=list)
    # The steps the caller may take now.
    actions: list[str] = Field(default_factory=list)


class FeedCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(default="", max_length=200)


class Feed(BaseModel):
    id: int
    label: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    # Only in the answer that creates it: the secret address is shown once.
    url: str | None = None


class Place(BaseModel):
    code: str
    name: str
    country: str
    latitude: float
    longitude: float
