"""Checking a message: the official schemas when an operator configured a folder holding them
(``ATLASLINK_SCHEMA_DIR``), and always the rules the standards state only in prose.

Schemas are compiled once per message root and cached. An EDXL-DE 2.0 envelope is checked in
two passes, because DE 2.0 and EDXL-RM define the ``xlink`` namespace differently and cannot
be loaded as one schema set: first the envelope (CAP payloads by their real schema, RM roots
by a small schema of our own that declares them with ``processContents="skip"``), then each
embedded payload against its own schema. Nothing is ever fetched: ``allow="local"`` and no
location hints from the document.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import xml.etree.ElementTree as ET  # element type only; parsing is xmlsafe's
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import xmlschema

from atlaslink.config import get_settings
from atlaslink.errors import Invalid
from atlaslink.messages import cap, de, rm
from atlaslink.messages.xmlsafe import local_name, namespace

log = logging.getLogger(__name__)

FILES = {
    "de2": "edxl-de-v2.0-wd11.xsd",
    "de1": "edxlde-1_0.xsd",
    "cap": "CAP-v1.2.xsd",
}
_DE2_DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")


def _rm_stub() -> str:
    decls = "".join(f'<xs:element name="{t}" type="r:Skip"/>' for t in rm.TYPES)
    return (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:r="{rm.NS_MSG}" targetNamespace="{rm.NS_MSG}" elementFormDefault="qualified">'
        '<xs:complexType name="Skip"><xs:sequence>'
        '<xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>'
        '</xs:sequence><xs:anyAttribute processContents="skip"/></xs:complexType>'
        f"{decls}</xs:schema>"
    )


@dataclass
class Result:
    """The outcome of checking one document."""

    kind: str  # e.g. "EDXL-DE 2.0 / RequestResource", "CAP 1.2"
    schema_checked: bool
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_if_invalid(self) -> None:
        if self.errors:
            first = self.errors[0]
            raise Invalid(
                f"The message is not valid {self.kind}: {first['field']}: {first['message']}",
                errors=self.errors,
            )


class Schemas:
    """The official schemas under one folder, compiled on first use and kept."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._cache: dict[str, xmlschema.XMLSchema10] = {}
        self._paths: dict[str, Path] = {}
        for path in root.rglob("*.xsd"):
            self._paths.setdefault(path.name, path)

    def path(self, key: str) -> Path | None:
        return self._paths.get(FILES.get(key, key))

    def rm_available(self, mtype: str) -> bool:
        return f"EDXL-RM{mtype}.xsd" in self._paths

    def get(self, key: str) -> xmlschema.XMLSchema10 | None:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            schema = self._build(key)
            if schema is not None:
                self._cache[key] = schema
            return schema

    def _build(self, key: str) -> xmlschema.XMLSchema10 | None:
        if key.startswith("rm:"):
            path = self._paths.get(f"EDXL-RM{key[3:]}.xsd")
            return xmlschema.XMLSchema10(str(path), allow="local") if path else None
        path = self.path(key)
        if path is None:
            return None
        if key == "cap":
            return xmlschema.XMLSchema10(str(path), allow="local")
        # Envelopes: payload namespaces satisfied by CAP's real schema and the RM stub.
        schema = xmlschema.XMLSchema10(str(path), allow="local", build=False)
        cap_path = self.path("cap")
        if cap_path is not None:
            schema.add_schema(str(cap_path), namespace=cap.NS_CAP, build=False)
        if key == "de2":
            schema.add_schema(io.StringIO(_rm_stub()), namespace=rm.NS_MSG, build=False)
        schema.maps.build()
        return schema

    def errors(self, key: str, elem: ET.Element, prefix: str = "") -> list[dict[str, str]]:
        schema = self.get(key)
        if schema is None:
            return []
        out = []
        for e in schema.iter_errors(elem, use_location_hints=False):
            out.append({"field": pretty(prefix + (e.path or "")), "message": _reason(e)})
            if len(out) >= 20:
                break
        return out


_PREFIXES = {
    rm.NS_MSG: "rmsg:",
    rm.NS_RM: "rm:",
    rm.NS_GML: "gml:",
    de.NS_DE2: "",
    de.NS_DE1: "",
    de.NS_CT: "ct:",
    cap.NS_CAP: "cap:",
    "urn:oasis:names:tc:ciq:xnl:3": "xnl:",
    "urn:oasis:names:tc:ciq:xpil:3": "xpil:",
    "urn:oasis:names:tc:ciq:xal:3": "xal:",
}
_CLARK = re.compile(r"\{([^}]*)\}")


def pretty(text: str) -> str:
    """Element paths with the usual prefixes instead of {namespace} (readable errors)."""
    return _CLARK.sub(lambda m: _PREFIXES.get(m[1], ""), text)


def _reason(e: Any) -> str:
    reason = str(getattr(e, "reason", "") or e.message)
    return pretty(reason.strip())


@lru_cache
def _configured(root: str) -> Schemas:
    return Schemas(Path(root))


def configured() -> Schemas | None:
    """The operator's schema folder, or None (said once in the log)."""
    root = get_settings().schema_dir
    if root is None or not Path(root).is_dir():
        _warn_once()
        return None
    return _configured(str(root))


@lru_cache
def _warn_once() -> None:
    log.warning(
        "ATLASLINK_SCHEMA_DIR is not set (or not a folder): standard messages are checked by "
        "the platform's own rules only, not against the official schemas"
    )


NOT_CONFIGURED = (
    "no schema folder configured (ATLASLINK_SCHEMA_DIR): checked against the platform's own "
    "rules only, not the official schemas"
)


def payload_kind(elem: ET.Element) -> str | None:
    ns, name = namespace(elem.tag), local_name(elem.tag)
    if ns == rm.NS_MSG and name in rm.TYPES:
        return name
    if ns == cap.NS_CAP and name == "alert":
        return "CAP"
    return None


def check_payload(
    schemas: Schemas | None, elem: ET.Element, prefix: str = ""
) -> list[dict[str, str]]:
    kind = payload_kind(elem)
    errors: list[dict[str, str]] = []
    if kind is None:
        return [
            {
                "field": prefix + "/" + local_name(elem.tag),
                "message": f"not an EDXL-RM 1.0 message or CAP 1.2 alert ({namespace(elem.tag)})",
            }
        ]
    if schemas is not None:
        errors += schemas.errors("cap" if kind == "CAP" else f"rm:{kind}", elem, prefix)
    if not errors:
        own = cap.rule_errors(elem) if kind == "CAP" else rm.rule_errors(elem)
        errors += [{"field": prefix + e["field"], "message": e["message"]} for e in own]
    return errors


def check(
    elem: ET.Element, schemas: Schemas | None = None, *, use_configured: bool = True
) -> Result:
    """Check a document: an envelope (and each payload), a bare RM message or a CAP alert."""
    if schemas is None and use_configured:
        schemas = configured()
    version = de.is_envelope(elem)
    if version is None:
        kind = payload_kind(elem)
        label = "CAP 1.2" if kind == "CAP" else f"EDXL-RM 1.0 {kind or local_name(elem.tag)}"
        return Result(label, schemas is not None, check_payload(schemas, elem))
    opened = de.open_envelope(elem, version)
    kinds = [payload_kind(p) or local_name(p.tag) for _, p in opened.payloads]
    label = f"EDXL-DE {version}" + (f" / {', '.join(kinds)}" if kinds else "")
    errors: list[dict[str, str]] = []
    if schemas is not None:
        errors += schemas.errors("de2" if version == "2.0" else "de1", elem)
    if version == "2.0" and not errors:
        for name in ("dateTimeSent", "dateTimeExpires"):
            el = next((c for c in elem if local_name(c.tag) == name), None)
            if el is not None and not _DE2_DT.match((el.text or "").strip()):
                errors.append(
                    {
                        "field": f"/edxlDistribution/{name}",
                        "message": "must be YYYY-MM-DDThh:mm:ss±hh:mm (no fractions, no Z)",
                    }
                )
    if not opened.payloads:
        errors.append({"field": "embeddedXMLContent", "message": "the envelope carries no XML"})
    for path, payload in opened.payloads:
        errors += check_payload(schemas, payload, path)
    return Result(label, schemas is not None, errors)
