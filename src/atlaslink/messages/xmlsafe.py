"""Reading XML from outside, safely: the one way in for every message the platform accepts.

No DTD (internal or external), no entity declarations, no external references, no network;
the size and the element nesting are bounded. The parser is expat through ``defusedxml``, so
nothing is ever fetched and a "billion laughs" document is refused at its first declaration,
before anything is expanded. The result is a standard-library ElementTree element, which
``xmlschema`` validates directly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # the Element type and ParseError; parsing is defusedxml
from typing import Any

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as SafeET

from atlaslink.config import get_settings
from atlaslink.errors import Invalid, TooLarge


class UnsafeXML(Invalid):
    """XML refused before it is read: a DTD, an entity, an external reference, too deep."""

    title = "Unsafe XML refused"


def _error(detail: str, field: str, message: str) -> UnsafeXML:
    return UnsafeXML(detail, errors=[{"field": field, "message": message}])


def parse(
    data: bytes | str, *, max_bytes: int | None = None, max_depth: int | None = None
) -> ET.Element:
    """Parse one XML document from outside, or raise a domain error saying why not."""
    settings = get_settings()
    limit = max_bytes if max_bytes is not None else settings.max_xml_bytes
    depth_limit = max_depth if max_depth is not None else settings.max_xml_depth
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > limit:
        raise TooLarge(
            f"The XML document has {len(raw)} bytes; at most {limit} are accepted.",
            errors=[{"field": "document", "message": f"larger than {limit} bytes"}],
        )
    if not raw.strip():
        raise Invalid(
            "The XML document is empty.", errors=[{"field": "document", "message": "empty"}]
        )
    try:
        root: ET.Element = SafeET.fromstring(
            raw, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DTDForbidden as exc:
        where = f" (external DTD {exc.sysid})" if exc.sysid else ""
        raise _error(
            f"The XML document declares a DTD{where}; DTDs are not accepted.",
            "DOCTYPE",
            "DTDs are not accepted (no DTD, internal or external)",
        ) from None
    except EntitiesForbidden as exc:
        raise _error(
            f"The XML document declares the entity {exc.name!r}; entities are not accepted.",
            "ENTITY",
            "entity declarations are not accepted",
        ) from None
    except ExternalReferenceForbidden as exc:
        raise _error(
            f"The XML document refers to an external resource ({exc.sysid or exc.pubid}); "
            "nothing outside the document is read.",
            "ENTITY",
            "external references are not accepted",
        ) from None
    except ET.ParseError as exc:
        line, col = exc.position
        raise Invalid(
            f"The XML document is not well-formed (line {line}, column {col}).",
            errors=[{"field": f"line {line}, column {col}", "message": str(exc)}],
        ) from None
    _check_depth(root, depth_limit)
    return root


def _check_depth(root: ET.Element, limit: int) -> None:
    stack: list[tuple[ET.Element, int]] = [(root, 1)]
    while stack:
        elem, depth = stack.pop()
        if depth > limit:
            raise _error(
                f"The XML document nests elements deeper than {limit} levels.",
                local_name(elem.tag),
                f"nested deeper than {limit} levels",
            )
        stack.extend((child, depth + 1) for child in elem)


def local_name(tag: Any) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


def namespace(tag: Any) -> str:
    text = str(tag)
    return text[1:].split("}", 1)[0] if text.startswith("{") else ""
