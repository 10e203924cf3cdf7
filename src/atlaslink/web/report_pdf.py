"""The after-action report as a PDF, built from the same viewer-shaped data as the HTML report
(``operations.views``), so it shows exactly what the reader may see. Every page carries the
EXERCISE/ACTUAL flag and the markings at top and bottom. The font is shipped with the package
(DejaVu Sans, see ``fonts/LICENSE-DejaVu.txt``): names such as "Żubr" or "Prüm" print as
written, and nothing is fetched."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files

from fpdf import FPDF
from fpdf.fonts import FontFace

from atlaslink.operations import schemas, vocab

_FONTS = files("atlaslink") / "web" / "fonts"
_EXERCISE = (255, 210, 63)
_ACTUAL = (163, 32, 43)
_HEAD = FontFace(emphasis="BOLD", fill_color=(238, 241, 245))


def _t(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%d %b %Y %H:%M") if value else "—"


def _m(value: float | None) -> str:
    return "not reached" if value is None else f"{value} min"


class _Report(FPDF):
    def __init__(self, r: schemas.RequestOut) -> None:
        super().__init__(format="A4")
        self.r = r
        self.add_font("DejaVu", "", str(_FONTS / "DejaVuSans.ttf"))
        self.add_font("DejaVu", "B", str(_FONTS / "DejaVuSans-Bold.ttf"))
        self.set_font("DejaVu", size=9)
        self.set_auto_page_break(auto=True, margin=22)
        self.set_title(f"After-action report {r.reference}")
        self.set_creator("atlaslink")

    def _flag(self, y: float) -> None:
        r = self.r
        self.set_xy(self.l_margin, y)
        if r.exercise:
            self.set_fill_color(*_EXERCISE)
            self.set_text_color(27, 35, 48)
            text = "EXERCISE · EXERCISE · EXERCISE"
        else:
            self.set_fill_color(*_ACTUAL)
            self.set_text_color(255, 255, 255)
            text = "ACTUAL OPERATION"
        self.set_font("DejaVu", "B", 9)
        marks = r.classification_label + (
            f" · {r.distribution_marking}" if r.distribution_marking else ""
        )
        self.cell(self.epw, 6, f"{text}   —   {marks} · {r.handling_code}", fill=True, align="C")
        self.set_text_color(0, 0, 0)
        self.set_font("DejaVu", "", 9)

    def header(self) -> None:
        self._flag(8)
        self.set_y(18)

    def footer(self) -> None:
        self.set_y(-18)
        self.set_font("DejaVu", "", 7)
        self.cell(0, 4, f"{self.r.reference} · page {self.page_no()}/{{nb}}", align="R")
        self._flag(self.h - 13)

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font("DejaVu", "B", 11)
        self.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font("DejaVu", "", 9)

    def facts(self, rows: list[tuple[str, str]]) -> None:
        with self.table(
            col_widths=(45, 135), first_row_as_headings=False, line_height=5, text_align="LEFT"
        ) as t:
            for key, value in rows:
                row = t.row()
                row.cell(key, style=FontFace(emphasis="BOLD"))
                row.cell(value)

    def grid(
        self, head: tuple[str, ...], rows: list[tuple[str, ...]], widths: tuple[int, ...]
    ) -> None:
        if not rows:
            self.cell(0, 5, "None.", new_x="LMARGIN", new_y="NEXT")
            return
        with self.table(
            col_widths=widths, headings_style=_HEAD, line_height=4.6, text_align="LEFT"
        ) as t:
            t.row(head)
            for values in rows:
                t.row(values)


def _terms(o: schemas.OfferOut) -> str:
    """The package and the equipment offered: for the two parties only (None otherwise)."""
    if o.package is None:
        return "for the two parties"
    text = o.package or "—"
    if o.equipment:
        text += "; equipment: " + ", ".join(f"{e.model} ({e.ref})" for e in o.equipment)
    return text


def build(
    r: schemas.RequestOut,
    events: list[schemas.EventOut],
    metrics: schemas.Metrics,
    *,
    final: bool,
) -> bytes:
    pdf = _Report(r)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.multi_cell(0, 8, f"After-action report {r.reference}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    if not final:
        pdf.set_text_color(138, 90, 0)
        pdf.multi_cell(
            0,
            5,
            f"Provisional: the request is {r.status.replace('_', ' ').lower()}. The report is "
            "final once the request is closed with a debrief.",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0, 0, 0)
    unit = f" ({r.requesting_unit.code}, {r.requesting_unit.name})" if r.requesting_unit else ""
    basis = (r.legal_basis_label or "not stated") + (
        f": {r.bilateral_agreement}" if r.bilateral_agreement else ""
    )
    pdf.facts(
        [
            ("Title", r.title),
            ("Exercise or actual", "EXERCISE" if r.exercise else "ACTUAL"),
            ("Crisis", f"{r.crisis_category_label} at {r.location_name}"),
            ("Requesting country", r.requesting_country + unit),
            ("Legal basis", basis),
            ("Nature", ", ".join(vocab.NATURES.get(n, n) for n in r.nature) or "—"),
            ("Operational necessity", r.operational_necessity or "—"),
            ("Status", f"{r.status.replace('_', ' ').lower()}, version {r.version}"),
            ("Submitted", _t(r.submitted_at)),
            ("Closed", _t(r.closed_at)),
            ("Incident id", r.incident_id),
        ]
    )
    pdf.heading("Response metrics (minutes from submission)")
    pdf.grid(
        ("Milestone", "Time"),
        [
            ("First acknowledgement", _m(metrics.first_acknowledgement)),
            ("First offer", _m(metrics.first_offer)),
            ("Full coverage", _m(metrics.full_coverage)),
            ("First team on site", _m(metrics.first_team_on_site)),
        ],
        (120, 60),
    )
    pdf.heading("Lines and coverage")
    pdf.grid(
        ("#", "Capability", "Level ≥", "Requested", "Committed", "Coverage"),
        [
            (
                str(line.line_no),
                line.capability_name + (" (removed)" if line.removed else ""),
                str(line.min_level),
                str(line.quantity),
                str(line.coverage.committed),
                line.coverage.coverage,
            )
            for line in r.lines
        ],
        (10, 70, 20, 25, 25, 30),
    )
    pdf.heading("Units asked and their answers")
    pdf.grid(
        ("Unit", "Answer", "Acknowledged", "Answered", "Escalations"),
        [
            (
                f"{a.unit.code} ({a.unit.country})",
                a.status.replace("_", " ").lower() + (f": {a.reason}" if a.reason else ""),
                _t(a.acknowledged_at),
                _t(a.answered_at),
                str(a.escalations),
            )
            for a in r.addressees
        ],
        (35, 55, 35, 35, 20),
    )
    pdf.heading("Offers and deployments")
    pdf.grid(
        ("Unit", "Final status", "Offered / accepted", "Terms"),
        [
            (
                o.unit.code,
                o.status.replace("_", " ").lower(),
                "; ".join(
                    f"{ol.line_no}: {ol.quantity} / "
                    + ("—" if ol.accepted_quantity is None else str(ol.accepted_quantity))
                    for ol in o.lines
                ),
                _terms(o),
            )
            for o in r.offers
        ],
        (30, 30, 40, 80),
    )
    pdf.heading("Debrief")
    pdf.multi_cell(
        0,
        5,
        r.debrief or "No debrief yet (it is written when the request is closed).",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.heading("Timeline")
    pdf.grid(
        ("Time (UTC)", "Unit", "What", "By"),
        [
            (
                e.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                e.unit_code or "",
                e.summary,
                e.actor,
            )
            for e in events
        ],
        (34, 22, 94, 30),
    )
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 7)
    pdf.multi_cell(
        0,
        4,
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from the recorded timeline; shows "
        "what the reader may see of this request.",
    )
    return bytes(pdf.output())
