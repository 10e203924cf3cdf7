"""Outbound messages from a real operation run through the API, checked against the official
schemas (the oracle), threaded, and holding only what each recipient may see."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from atlaslink.messages import de, rm, validation, xmlsafe
from atlaslink.messages import valuelist as vl
from tests.messages_support import full_operation, official, outbox_of, standard_partners

EMITTED = {
    "RequestResource",
    "ResponseToRequestResource",
    "RequisitionResource",
    "CommitResource",
    "ReportResourceDeploymentStatus",
    "ReleaseResource",
    "RequestReturn",
}


def _payload(body: str) -> Any:
    root = xmlsafe.parse(body.encode())
    version = de.is_envelope(root)
    assert version is not None
    opened = de.open_envelope(root, version)
    assert len(opened.payloads) == 1
    return root, opened, opened.payloads[0][1]


def test_every_emitted_message_validates_against_the_official_schemas(
    api_as: Any, db: Session
) -> None:
    standard_partners(db)
    full_operation(api_as, db)
    rows = outbox_of(db)
    assert rows, "the operation produced no outbound messages"
    schemas = official()
    seen: set[str] = set()
    versions: set[str] = set()
    for row in rows:
        root, opened, _ = _payload(row.body)
        result = validation.check(root, schemas)
        assert result.ok, (row.message_type, result.errors)
        assert result.schema_checked
        seen.add(row.message_type)
        versions.add(opened.version)
        assert row.state == "pending"
    assert seen >= EMITTED, f"not emitted: {EMITTED - seen}"
    assert versions == {"1.0", "2.0"}


def test_threading_and_envelope(api_as: Any, db: Session) -> None:
    standard_partners(db)
    rid = full_operation(api_as, db)
    rows = outbox_of(db, "de-falke")
    msgs = [rm.read(_payload(r.body)[2]) for r in rows]
    first = next(m for m in msgs if m.type == "RequestResource")
    assert first.message_id.endswith(":RequestResource:v1")
    origin = first.message_id
    for m in msgs:
        assert m.origin == origin, m.type
        assert m.incident_id and m.incident_id.startswith("urn:uuid:")
    amended = [m for m in msgs if m.type == "RequestResource" and m.recall]
    assert amended and amended[0].recall == (origin, "Update")
    ids = {m.message_id for m in msgs}
    for m in msgs:
        if m.type != "RequestResource":
            assert m.preceding in ids, (m.type, m.preceding)
    # The envelope: sender, the one explicit recipient, confidentiality from the markings.
    _, opened, _ = _payload(rows[0].body)
    assert opened.sender_id == "atlaslink"
    assert opened.recipients == ["de.falke.command"]
    assert opened.exercise is True
    assert opened.keywords[vl.CLASSIFICATION_URN] == ["RESTREINT_UE"]
    assert opened.keywords[vl.HANDLING_URN] == ["H2"]
    assert opened.keywords[vl.DISTRIBUTION_URN] == ["LIMITE"]
    text = rows[0].body
    assert "<combinedConfidentiality>Classified</combinedConfidentiality>" in text
    assert "<distributionStatus>Exercise</distributionStatus>" in text
    assert ".000" not in text and "Z<" not in text
    assert rid


def test_capability_types_travel_with_their_value_list_and_rtlt_mapping(
    api_as: Any, db: Session
) -> None:
    standard_partners(db)
    full_operation(api_as, db)
    row = next(r for r in outbox_of(db, "at-adler") if r.message_type == "RequestResource")
    msg = rm.read(_payload(row.body)[2])
    line1, line2 = msg.resources
    assert vl.is_capability_urn(line1.type_urn or "") and line1.type_values == ["building"]
    assert line1.keyword(vl.RTLT_URN) == "6-508-1245"  # SWAT
    assert line2.keyword(vl.RTLT_URN) == "6-508-1231"  # crisis negotiation
    assert line1.keyword(vl.LEVEL_URN) == "2" and line1.quantity == "6"


def test_sharing_applies_to_each_recipient(api_as: Any, db: Session) -> None:
    standard_partners(db)
    full_operation(api_as, db)

    # The requesting side and the offering unit read the offer's package; another addressed
    # unit (NL) learns that Austria offered, not what; a unit never asked gets nothing, nor
    # does an observer network the request was not granted to.
    def offer_bodies(code: str) -> list[str]:
        return [
            r.body
            for r in outbox_of(db, code)
            if r.message_type == "ResponseToRequestResource" and "AT-ADLER" in r.body
        ]

    assert any("4 operators, rail-breaching kit" in b for b in offer_bodies("de-falke"))
    assert any("4 operators, rail-breaching kit" in b for b in offer_bodies("at-adler"))
    nl = offer_bodies("nl-reiger")
    assert nl and not any("rail-breaching" in b or "own costs" in b for b in nl)
    assert outbox_of(db, "it-lupo") == []
    assert outbox_of(db, "observers") == []
    # Deployment terms (arrangements) are for the two parties: NL sees no requisition of AT.
    assert not [r for r in outbox_of(db, "nl-reiger") if "own costs" in r.body]


def test_granting_observers_lets_the_observer_partner_follow(api_as: Any, db: Session) -> None:
    from tests.conftest import unit_id
    from tests.messages_support import ok, request_body

    standard_partners(db)
    de_ = api_as("duty.de")
    rid = ok(de_.post("/api/v1/requests", json=request_body(submit=True)), 201)["id"]
    ok(de_.post(f"/api/v1/requests/{rid}/grants", json={"grantee": "observers"}))
    ok(de_.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}))
    rows = outbox_of(db, "observers")
    assert [r.message_type for r in rows] == ["RequestResource"]
