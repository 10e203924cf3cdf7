"""Turning the forms of the operation pages into the API's request bodies.

Pages and API share one set of schemas and services: a form is parsed into the same Pydantic
body the API takes, so the rules are checked in one place. Browsers send no time zone with a
``datetime-local`` field; the pages label those fields UTC and read them as UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from atlaslink.errors import DomainError, Invalid

# Empty rows offered for requested lines on the create/amend form.
MAX_LINES = 12


def text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def when(form: FormData, name: str, problems: list[dict[str, str]]) -> datetime | None:
    raw = text(form, name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        problems.append({"field": name, "message": "write the time as YYYY-MM-DD HH:MM (UTC)"})
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def number(form: FormData, name: str, problems: list[dict[str, str]], *, real: bool = False) -> Any:
    raw = text(form, name).replace(",", ".") if real else text(form, name)
    if not raw:
        return None
    try:
        return float(raw) if real else int(raw)
    except ValueError:
        problems.append({"field": name, "message": "write a number"})
        return None


def _label(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body",)]
    if len(parts) >= 2 and parts[0] in ("lines",) and isinstance(parts[1], int):
        rest = ".".join(str(p) for p in parts[2:])
        return f"line {parts[1] + 1}" + (f" {rest}" if rest else "")
    return ".".join(str(p) for p in parts) or "form"


def errors_of(exc: Exception) -> list[dict[str, Any]]:
    if isinstance(exc, ValidationError):
        return [{"field": _label(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    if isinstance(exc, DomainError):
        # The sentence first, then the fields it is about.
        return [{"message": exc.detail}, *exc.errors]
    return [{"message": str(exc)}]


def status_of(exc: Exception) -> int:
    return exc.status if isinstance(exc, DomainError) else 422


def build(model: type[BaseModel], data: Mapping[str, Any], problems: list[Any]) -> Any:
    """Validate ``data`` as ``model``; form-level problems found earlier are reported with the
    schema's own, so a person sees every mistake at once."""
    try:
        body = model.model_validate(dict(data))
    except ValidationError as exc:
        raise Invalid("Some fields are not valid.", errors=problems + errors_of(exc)) from exc
    if problems:
        raise Invalid("Some fields are not valid.", errors=problems)
    return body


def request_body(form: FormData, *, amend: bool = False) -> dict[str, Any]:
    """The fields of a request (create or amend) and the problems found in parsing them."""
    problems: list[dict[str, str]] = []
    lines = []
    for i in range(1, MAX_LINES + 1):
        capability = text(form, f"line{i}.capability")
        if not capability:
            continue
        lines.append(
            {
                "capability": capability,
                "min_level": number(form, f"line{i}.min_level", problems) or 0,
                "quantity": number(form, f"line{i}.quantity", problems) or 1,
                "needed_by": when(form, f"line{i}.needed_by", problems),
                "note": text(form, f"line{i}.note"),
            }
        )
    flag = text(form, "exercise")
    if flag not in ("exercise", "actual"):
        problems.append({"field": "exercise", "message": "choose EXERCISE or ACTUAL"})
    agreement = number(form, "bilateral_agreement_id", problems)
    data: dict[str, Any] = {
        "exercise": flag == "exercise",
        "title": text(form, "title"),
        "crisis_category": text(form, "crisis_category"),
        "location_name": text(form, "location_name"),
        "latitude": number(form, "latitude", problems, real=True),
        "longitude": number(form, "longitude", problems, real=True),
        "nature": [n for n in form.getlist("nature") if isinstance(n, str) and n],
        "operational_necessity": text(form, "operational_necessity"),
        "legal_basis": text(form, "legal_basis") or None,
        "bilateral_agreement_id": agreement,
        "classification": text(form, "classification") or "none",
        "distribution_marking": text(form, "distribution_marking"),
        "handling_code": text(form, "handling_code") or "H0",
        "handling_note": text(form, "handling_note"),
        "lines": lines,
        "lapse_at": when(form, "lapse_at", problems),
    }
    if amend:
        data["expected_version"] = number(form, "expected_version", problems)
        data["reason"] = text(form, "reason")
    else:
        data["kind"] = text(form, "kind") or "request"
        data["requesting_unit_id"] = number(form, "requesting_unit_id", problems)
        data["pre_alert_id"] = number(form, "pre_alert_id", problems)
        data["ack_minutes"] = number(form, "ack_minutes", problems)
        data["submit"] = text(form, "action") == "submit"
    return {"data": data, "problems": problems}


def offer_lines(form: FormData, prefix: str, problems: list[dict[str, str]]) -> list[Any]:
    """``{prefix}{line_no}`` quantity fields; empty or 0 leaves the line out."""
    out = []
    for key in form:
        if not key.startswith(prefix):
            continue
        tail = key[len(prefix) :]
        if not tail.isdigit():
            continue
        qty = number(form, key, problems)
        if qty:
            out.append({"line_no": int(tail), "quantity": qty})
    return sorted(out, key=lambda x: x["line_no"])
