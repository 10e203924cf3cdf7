"""API shapes of assistance requests, answers, offers and deployments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from atlaslink.operations import vocab

Text300 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineIn(_In):
    capability: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
    ]
    min_level: int = Field(ge=0, le=3)
    quantity: int = Field(ge=1, le=10_000)
    needed_by: datetime | None = None
    note: LongText = ""

    @field_validator("needed_by")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-11-23T14:00:00Z)")
        return value


class RequestBody(_In):
    """What a requester states. Used for creating and, with ``expected_version``, amending."""

    exercise: bool = Field(description="True for an exercise; shown as EXERCISE everywhere.")
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=300)]
    crisis_category: Literal[tuple(vocab.CRISIS_CATEGORIES)]  # type: ignore[valid-type]
    location_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)
    ]
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    nature: list[Literal[tuple(vocab.NATURES)]] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=3
    )
    operational_necessity: LongText = ""
    legal_basis: Literal[tuple(vocab.LEGAL_BASES)] | None = None  # type: ignore[valid-type]
    bilateral_agreement_id: int | None = None
    classification: Literal[tuple(vocab.CLASSIFICATIONS)] = "none"  # type: ignore[valid-type]
    distribution_marking: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=64)
    ] = ""
    handling_code: Literal[tuple(vocab.HANDLING_CODES)] = "H0"  # type: ignore[valid-type]
    handling_note: LongText = ""
    lines: list[LineIn] = Field(default_factory=list, max_length=50)
    lapse_at: datetime | None = None

    @field_validator("lapse_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-11-23T14:00:00Z)")
        return value


class RequestCreate(RequestBody):
    kind: Literal["pre_alert", "request"] = "request"
    # The requesting unit; defaults to the caller's own unit. National contact points may leave
    # it empty (the request then comes from the country).
    requesting_unit_id: int | None = None
    # A request that follows a pre-alert names it; the pre-alert is then marked followed up.
    pre_alert_id: int | None = None
    ack_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    # Submit at once (through the national gate where the country has one).
    submit: bool = False


class RequestAmend(RequestBody):
    expected_version: int = Field(description="The version the edit is based on.")
    reason: LongText = ""


class Transition(_In):
    reason: LongText = ""
    expected_version: int | None = None


class CloseBody(_In):
    debrief: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=10, max_length=20_000)
    ]


class AddressBody(_In):
    unit_ids: list[int] = Field(default_factory=list, max_length=200)
    # Instead of units: the next ring (neighbouring countries, then region, then the network).
    next_ring: bool = False


class OfferLineIn(_In):
    line_no: int = Field(ge=1)
    quantity: int = Field(ge=1, le=10_000)


class AnswerBody(_In):
    """An addressed unit's answer."""

    answer: Literal["accept", "refuse", "counter_propose", "unable_to_fill"]
    reason: LongText = ""
    lines: list[OfferLineIn] = Field(default_factory=list, max_length=50)
    nature: list[Literal[tuple(vocab.NATURES)]] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=3
    )
    package: LongText = ""
    eta_at: datetime | None = None
    conditions: LongText = ""
    costs: LongText = ""
    # Items of the unit's own equipment inventory offered with it (ids), held for the
    # operation from acceptance until ``equipment_until`` (default: ATLASLINK_OFFER_EQUIPMENT_DAYS
    # days from the answer). Offering an item shows it to the requesting side, whatever the
    # item's own sharing audience.
    equipment: list[int] = Field(default_factory=list, max_length=50)
    equipment_until: datetime | None = None

    @field_validator("equipment")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("each item once")
        return value

    @field_validator("eta_at", "equipment_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-11-23T14:00:00Z)")
        return value


class AcceptLineIn(_In):
    line_no: int = Field(ge=1)
    quantity: int = Field(ge=1, le=10_000)


class AcceptBody(_In):
    expected_lock: int | None = Field(
        default=None, description="The offer's lock_version as last seen (refused if changed)."
    )
    # Partial acceptance: quantities per line; empty = everything offered.
    lines: list[AcceptLineIn] = Field(default_factory=list, max_length=50)


class ArrangementBody(_In):
    command: LongText
    liaison_officer: Text300 = ""
    liaison_contact: Text300 = ""
    working_language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "en"
    costs: LongText
    liability: LongText
    notes: LongText = ""


class ManifestItemIn(_In):
    category: Literal[tuple(vocab.MANIFEST_CATEGORIES)]  # type: ignore[valid-type]
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)
    ]
    quantity: int = Field(default=1, ge=1, le=100_000)
    serial_numbers: LongText = ""


class ManifestDecision(_In):
    decision: Literal["approved", "prohibited"]
    note: LongText = ""


class MovementIn(_In):
    kind: Literal[tuple(vocab.MOVEMENT_KINDS)]  # type: ignore[valid-type]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
    reference: Text300 = ""
    route: LongText = ""
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    status: Literal[vocab.MOVEMENT_STATUSES] = "requested"  # type: ignore[valid-type]
    note: LongText = ""


class StatusBody(_In):
    status: Literal[
        "MOBILISING", "EN_ROUTE", "ON_SITE", "ON_TASK", "STOOD_DOWN", "RETURNING", "HOME", "SETTLED"
    ]
    note: LongText = ""


class NoteBody(_In):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    pinned: bool = False


class GrantBody(_In):
    grantee: Literal[vocab.GRANTEES]  # type: ignore[valid-type]
    country: str | None = None
    unit_id: int | None = None


# ----------------------------------------------------------------------------- output


class UnitRef(BaseModel):
    """A unit as named in requests: its directory fields (visible network-wide)."""

    id: int
    code: str
    name: str
    country: str
    base_location: str = ""
    latitude: float | None = None
    longitude: float | None = None


class Coverage(BaseModel):
    requested: int
    offered: int
    committed: int
    on_site: int
    # none / partial / complete, from committed (accepted or further) against requested
    coverage: Literal["none", "partial", "complete"]


class LineOut(BaseModel):
    line_no: int
    capability: str
    capability_name: str
    min_level: int
    quantity: int
    needed_by: datetime | None
    note: str
    removed: bool
    coverage: Coverage


class AddresseeOut(BaseModel):
    id: int
    unit: UnitRef
    ring: int
    status: str
    addressed_at: datetime
    ack_due_at: datetime
    acknowledged_at: datetime | None
    answered_at: datetime | None
    reason: str | None
    escalations: int
    support_office_alerted: bool
    seen_version: int


class OfferLineOut(BaseModel):
    line_no: int
    quantity: int
    accepted_quantity: int | None


class ArrangementOut(BaseModel):
    command: str
    liaison_officer: str
    liaison_contact: str
    working_language: str
    costs: str
    liability: str
    notes: str
    revision: int
    requester_confirmed_at: datetime | None
    requester_confirmed_by: str | None
    assisting_confirmed_at: datetime | None
    assisting_confirmed_by: str | None


class ManifestItemOut(BaseModel):
    id: int
    category: str
    description: str
    quantity: int
    serial_numbers: str
    host_decision: str
    decision_note: str
    decided_by: str | None
    decided_at: datetime | None


class MovementOut(BaseModel):
    id: int
    kind: str
    country: str
    reference: str
    route: str
    valid_from: datetime | None
    valid_to: datetime | None
    status: str
    note: str
    recorded_by: str
    recorded_at: datetime


class OfferedItemOut(BaseModel):
    """An item of the offering unit's equipment offered with the offer (for the two parties)."""

    item_id: int
    ref: str
    category: str
    category_name: str
    model: str
    quantity: int
    serial_numbers: list[str]
    weight_kg: float | None
    length_cm: int | None
    width_cm: int | None
    height_cm: int | None
    air_transportable: bool
    needs_vehicle: bool
    operator_training: str
    restrictions: str
    # Offered until; held for the operation from acceptance (the loan) until then.
    until: datetime
    loan_id: int | None
    loan_status: str | None


class OfferOut(BaseModel):
    id: int
    unit: UnitRef
    kind: str
    status: str
    request_version: int
    lock_version: int
    status_changed_at: datetime
    lines: list[OfferLineOut]
    # Details below are shown to the two parties only (None for other involved units).
    nature: list[str] | None = None
    package: str | None = None
    eta_at: datetime | None = None
    conditions: str | None = None
    costs: str | None = None
    reason: str | None = None
    arrangement: ArrangementOut | None = None
    manifest: list[ManifestItemOut] | None = None
    movements: list[MovementOut] | None = None
    equipment: list[OfferedItemOut] | None = None
    # What the viewer may do to this offer now (a hint; every action is checked again).
    actions: list[str] = []


class EventOut(BaseModel):
    id: int
    # Its place in commit order: `/events?after_seq=` with the highest one seen misses nothing
    # (ids are not in commit order).
    live_seq: int
    occurred_at: datetime
    actor: str
    kind: str
    summary: str
    unit_code: str | None
    pinned: bool


class Involvement(BaseModel):
    requester: bool
    approver: bool
    addressee_id: int | None
    supervisor: bool
    granted: bool


class RequestOut(BaseModel):
    id: int
    reference: str
    kind: str
    status: str
    version: int
    lock_version: int
    exercise: bool
    requesting_country: str
    requesting_unit: UnitRef | None
    created_by: str
    title: str
    crisis_category: str
    crisis_category_label: str
    location_name: str
    latitude: float | None
    longitude: float | None
    nature: list[str]
    operational_necessity: str
    legal_basis: str | None
    legal_basis_label: str | None
    bilateral_agreement: str | None
    classification: str
    classification_label: str
    distribution_marking: str
    handling_code: str
    handling_note: str
    ack_minutes: int
    lapse_at: datetime | None
    pre_alert_id: int | None
    incident_id: str
    created_at: datetime
    submitted_at: datetime | None
    opened_at: datetime | None
    closed_at: datetime | None
    debrief: str | None
    lines: list[LineOut]
    addressees: list[AddresseeOut]
    offers: list[OfferOut]
    involvement: Involvement
    # What the viewer may do to the request now, e.g. "submit", "address", "answer".
    actions: list[str] = []


class RequestSummary(BaseModel):
    id: int
    reference: str
    kind: str
    status: str
    exercise: bool
    title: str
    crisis_category: str
    requesting_country: str
    location_name: str
    classification: str
    created_at: datetime
    updated_at: datetime


class NotificationOut(BaseModel):
    id: int
    # Its place in commit order: `/notifications/live?after=` with the highest one seen.
    live_seq: int
    kind: str
    title: str
    body: str
    link: str
    urgent: bool
    exercise: bool
    created_at: datetime
    read_at: datetime | None
    # none (in-app only), pending, sent, failed (parked after the last retry)
    email_state: str
    email_attempts: int


class Metrics(BaseModel):
    """Response metrics of one request, in minutes from submission (None = not reached)."""

    first_acknowledgement: float | None
    first_offer: float | None
    full_coverage: float | None
    first_team_on_site: float | None


class Preferences(_In):
    """Quiet hours (UTC, "HH:MM"; both or neither) hold back routine e-mail, never an urgent
    one; ``email_enabled`` false keeps routine notifications in the app only."""

    quiet_start: Annotated[str, StringConstraints(max_length=5)] | None = None
    quiet_end: Annotated[str, StringConstraints(max_length=5)] | None = None
    email_enabled: bool = True


class DashboardRow(BaseModel):
    id: int
    reference: str
    title: str
    exercise: bool
    status: str
    crisis_category: str
    requesting_country: str
    submitted_at: datetime | None
    metrics: Metrics


class MetricSummary(BaseModel):
    """Across requests: how many reached the milestone and the median minutes it took."""

    reached: int
    median_minutes: float | None
    p90_minutes: float | None


class Dashboard(BaseModel):
    scope: Literal["network", "involved"]
    exercise: bool | None
    requests: int
    by_status: dict[str, int]
    by_category: dict[str, int]
    first_acknowledgement: MetricSummary
    first_offer: MetricSummary
    full_coverage: MetricSummary
    first_team_on_site: MetricSummary
    # The requests the viewer may see, newest first (the network scope counts all of them).
    recent: list[DashboardRow]


# ------------------------------------------------------------------ country rules, agreements

IsoCode = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, min_length=2, max_length=2)
]


class CountryRules(BaseModel):
    """The rules the platform applies for one country (defaults when none were set)."""

    country: str = Field(description="Display code (EL for Greece, UK for the United Kingdom).")
    iso2: str
    name: str
    national_approval_required: bool
    requires_bilateral_agreement: bool
    prohibits_foreign_arms: bool
    prohibits_foreign_explosives: bool
    excluded_from_2008_617: bool
    note: str
    updated_at: datetime | None
    editable: bool = Field(description="Whether the caller may change them.")


class CountryRulesUpdate(_In):
    """Fields left out keep their value."""

    national_approval_required: bool | None = None
    requires_bilateral_agreement: bool | None = None
    prohibits_foreign_arms: bool | None = None
    prohibits_foreign_explosives: bool | None = None
    excluded_from_2008_617: bool | None = None
    note: LongText | None = None


class AgreementIn(_In):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=300)]
    country_a: IsoCode
    country_b: IsoCode
    valid_from: date | None = None
    valid_to: date | None = None
    note: LongText = ""


class AgreementRetire(_In):
    valid_to: date | None = Field(
        default=None, description="The last day it applies; default today."
    )
    reason: LongText = ""


class AgreementOut(BaseModel):
    id: int
    name: str
    countries: list[str] = Field(description="The two parties, display codes.")
    valid_from: date | None
    valid_to: date | None
    # in_force, not_yet (starts later) or expired
    status: str
    note: str
    editable: bool
