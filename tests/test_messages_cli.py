"""The messages CLI: partners, endpoints, importing and checking messages, the outbox."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sqlalchemy import select

from atlaslink import db
from atlaslink.auth import service as auth
from atlaslink.messages import de, xmlsafe
from atlaslink.models import OutboxMessage, Unit, User
from atlaslink.operations import answers, schemas, service
from tests.messages_support import STANDARDS, request_body
from tests.test_cli import _loaded, cli_db, run

__all__ = ["cli_db"]


def _principal(s: Any, username: str) -> Any:
    return auth.principal_of(s.scalar(select(User).where(User.username == username)))


def test_partners_import_check_and_outbox(cli_db: str, tmp_path: Path) -> None:
    _loaded()
    r: Any = run(
        "partners",
        "add",
        "at-adler",
        "ADLER command",
        "at.adler.command",
        "--unit",
        "AT-ADLER",
        "--as",
        "support",
    )
    assert r.exit_code == 0, r.output
    r = run(
        "partners", "endpoint", "at-adler", "directory", str(tmp_path / "drop"), "--as", "support"
    )
    assert r.exit_code == 0 and "endpoint" in r.output
    r = run("partners", "list", "--as", "support", COLUMNS="250")
    assert "at-adler" in r.output and "unit AT-ADLER" in r.output
    assert run("partners", "list", "--as", "duty.de").exit_code == 1  # not theirs to manage

    with db.unit_of_work() as s:
        p = _principal(s, "duty.de")
        req = service.create_request(s, p, schemas.RequestCreate(**request_body(submit=True)))
        at = s.scalar(select(Unit.id).where(Unit.code == "AT-ADLER"))
        answers.address(s, p, req.id, schemas.AddressBody(unit_ids=[at]))
    with db.unit_of_work() as s:
        body = s.scalars(select(OutboxMessage)).first().body  # type: ignore[union-attr]
    payload = de.open_envelope(xmlsafe.parse(body.encode()), "2.0").payloads[0][1]
    raw = ET.tostring(payload, encoding="utf-8").replace(b">atlaslink:", b">peer:")
    msg = tmp_path / "rr.xml"
    msg.write_bytes(raw)

    r = run("messages", "import", str(msg), "--as", "duty.de")
    assert r.exit_code == 0, r.output
    assert "imported" in r.output and "AR-" in r.output
    assert "ATLASLINK_SCHEMA_DIR" in r.output  # says that no schema folder is configured
    r = run("messages", "import", str(msg), "--as", "duty.de")
    assert "already imported" in r.output

    r = run("outbox", "list", "--as", "support", COLUMNS="250")
    assert r.exit_code == 0 and "RequestResource" in r.output and "pending" in r.output
    r = run("outbox", "deliver")
    assert r.exit_code == 0 and "delivered 1" in r.output
    assert len(list((tmp_path / "drop").glob("*.xml"))) == 1


def test_check_names_the_faulty_element(cli_db: str, monkeypatch: Any) -> None:
    assert STANDARDS is not None
    bad = STANDARDS / "edxl-rm-1.0/examples/CommitResource-Decline.xml"
    r: Any = run("messages", "check", str(bad), ATLASLINK_SCHEMA_DIR=str(STANDARDS))
    assert r.exit_code == 2 and "PersonName" in r.output
    unsafe = Path(__file__).with_name("test_messages_xmlsafe.py")
    r = run("messages", "check", str(unsafe))
    assert r.exit_code == 1 and "not well-formed" in r.output
