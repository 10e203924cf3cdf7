"""Every XML input is read with no DTD, no entities, no network, bounded size and depth."""

from __future__ import annotations

import pytest

from atlaslink.errors import Invalid, TooLarge
from atlaslink.messages import xmlsafe

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<foo>&xxe;</foo>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol9;</lolz>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/cap.dtd">
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<x/>"""


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (XXE, "DOCTYPE"),
        (BILLION_LAUGHS, "DOCTYPE"),
        (EXTERNAL_DTD, "DOCTYPE"),
        (PARAMETER_ENTITY, "DOCTYPE"),
    ],
    ids=["xxe", "billion-laughs", "external-dtd", "parameter-entity"],
)
def test_dtds_and_entities_are_refused(doc: bytes, field: str) -> None:
    with pytest.raises(xmlsafe.UnsafeXML) as info:
        xmlsafe.parse(doc)
    assert info.value.status == 422
    assert "DTD" in info.value.detail
    assert info.value.errors[0]["field"] == field


def test_oversized_document_is_refused_before_parsing() -> None:
    doc = b"<a>" + b"x" * 2000 + b"</a>"
    with pytest.raises(TooLarge) as info:
        xmlsafe.parse(doc, max_bytes=1000)
    assert info.value.status == 413 and "1000" in info.value.detail


def test_too_deep_document_is_refused() -> None:
    doc = b"<a>" * 50 + b"</a>" * 50
    with pytest.raises(xmlsafe.UnsafeXML) as info:
        xmlsafe.parse(doc, max_depth=40)
    assert "deeper than 40" in info.value.detail
    # Just inside the limit is fine.
    assert xmlsafe.parse(b"<a>" * 40 + b"</a>" * 40, max_depth=40).tag == "a"


def test_malformed_document_names_line_and_column() -> None:
    with pytest.raises(Invalid) as info:
        xmlsafe.parse(b"<a>\n<b></a>")
    assert "line 2" in info.value.detail


def test_empty_document() -> None:
    with pytest.raises(Invalid):
        xmlsafe.parse(b"  ")


def test_plain_namespaced_document_parses() -> None:
    root = xmlsafe.parse(b'<r:x xmlns:r="urn:test"><r:y>1</r:y></r:x>')
    assert xmlsafe.local_name(root.tag) == "x" and xmlsafe.namespace(root.tag) == "urn:test"
