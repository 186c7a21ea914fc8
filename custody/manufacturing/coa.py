"""The Certificate of Analysis of a lot, as a PDF: what was made, what it was tested against,
what was found, and who signed it off."""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.orm import Session

from custody.manufacturing.batch_record import deviation_label, lot_deviations
from custody.manufacturing.oos import lot_investigations
from custody.manufacturing.qc import current_results, lot_results
from custody.manufacturing.release import lot_decisions
from lots.banks import lineage
from lots.base import utcnow
from lots.batch import CellBank, Lot, LotStatus, QcResult, ReleaseDecision
from lots.qc_rules import Conformance
from lots.rules import describe_line, plain_decimal

# Vera ships inside reportlab, so the PDF looks the same on every host; it has ≥, ≤, – and µ.
# Names in Chinese fall back to Adobe's STSong, which PDF readers supply (nothing embedded).
FONT, BOLD, CJK, MONO = "CelltrailVera", "CelltrailVera-Bold", "STSong-Light", "Courier"
RELEASED = (LotStatus.RELEASED, LotStatus.EXCEPTIONALLY_RELEASED)
CONFORMANCE_TEXT = {
    Conformance.CONFORMS: "Conforms",
    Conformance.OUT_OF_SPECIFICATION: "OUT OF SPECIFICATION",
    Conformance.REPORTED: "Reported",
}
OOS_FILL = colors.Color(1, 0.87, 0.87)
WATERMARK = colors.Color(0.8, 0.1, 0.1, alpha=0.18)
SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


def render_coa(session: Session, lot: Lot, *, now: dt.datetime | None = None) -> bytes:
    """The lot's Certificate of Analysis; a lot not released is marked NOT RELEASED."""
    _register_fonts()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=f"Certificate of Analysis {lot.number}",
        author="celltrail",
        subject=f"{lot.product.code} lot {lot.number}",
    )
    story = [
        Paragraph("Certificate of Analysis", _style("title")),
        *_status_banner(lot),
        Spacer(1, 3 * mm),
        _facts_table(lot),
        Spacer(1, 5 * mm),
        Paragraph("Specification and results", _style("heading")),
        _results_table(session, lot),
        *_corrections(session, lot),
        *_investigations(session, lot),
        *_deviations(session, lot),
        Paragraph("QA decisions", _style("heading")),
        *_decisions(session, lot),
    ]
    page = _page_decoration(lot, now or utcnow())
    document.build(story, onFirstPage=page, onLaterPages=page)
    return buffer.getvalue()


def _status_banner(lot: Lot) -> list[Any]:
    if lot.status == LotStatus.EXCEPTIONALLY_RELEASED:
        text = (
            f"EXCEPTIONAL RELEASE — out of specification; for subject "
            f"{lot.exceptional_subject} only"
        )
        return [_banner(text, colors.Color(0.75, 0.45, 0.0))]
    if lot.status in RELEASED:
        return []
    return [_banner(f"NOT RELEASED — status {_status_text(lot.status)}", colors.darkred)]


def _banner(text: str, colour: colors.Color) -> Table:
    markup = f'<font color="{colour.hexval()}">{_text(text)}</font>'
    banner = Table([[Paragraph(markup, _style("banner"))]], colWidths=["100%"])
    banner.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 1.5, colour),
                ("BACKGROUND", (0, 0), (-1, -1), colors.Color(1, 0.95, 0.95)),
                ("TOPPADDING", (0, 0), (-1, -1), 6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    return banner


def _facts_table(lot: Lot) -> Table:
    version = lot.product_version
    donor = next((bank.donor for bank in lineage(lot.bank) if bank.donor is not None), None)
    rows = [
        ("Product", f"{lot.product.code} — {version.name} (version {version.version})"),
        ("GTIN", lot.product.gtin),
        ("Lot", lot.number),
        ("Status", _status_text(lot.status)),
        ("Cell bank", _bank_text(lot.bank)),
        ("Genealogy", ", made from ".join(_bank_text(bank) for bank in lineage(lot.bank))),
        ("Donor", f"{donor.code} (eligibility: {donor.eligibility})" if donor else "—"),
        ("Manufactured at", f"{lot.site.code} — {lot.site.name}"),
        ("Manufacture start", _utc(lot.manufacture_start)),
        ("Manufacture end", _utc(lot.manufacture_end)),
        ("Expiry", f"{lot.expires_on.isoformat()} (shelf life {version.shelf_life_days} days)"),
        ("Vials filled", f"{lot.vials_filled:,}"),
        ("Cells per vial", f"{lot.cells_per_vial:,}"),
        ("Volume per vial", f"{plain_decimal(lot.volume_ml)} mL"),
        ("Storage", version.storage_condition),
    ]
    if lot.donor_eligibility_justification:
        rows.insert(7, ("Donor justification", lot.donor_eligibility_justification))
    return _key_value_table(rows)


def _results_table(session: Session, lot: Lot) -> Table:
    current = current_results(session, lot)
    header = ["Test", "Method", "Acceptance criterion", "Result", "Conformance"]
    rows: list[list[Any]] = [[Paragraph(_text(text), _style("th")) for text in header]]
    out_of_spec = []
    for position, line in enumerate(lot.product_version.specification, start=1):
        result = current.get(line.test)
        if result is not None and result.conformance == Conformance.OUT_OF_SPECIFICATION:
            out_of_spec.append(position)
        rows.append(
            [
                _cell(line.test),
                _cell(line.method),
                _cell(describe_line(line)),
                _cell(_result_text(result)) if result else _cell("No result"),
                _cell(CONFORMANCE_TEXT.get(Conformance(result.conformance), result.conformance))
                if result
                else _cell("—"),
            ]
        )
    table = Table(rows, colWidths=[44 * mm, 36 * mm, 28 * mm, 38 * mm, 28 * mm], repeatRows=1)
    commands: list[tuple[Any, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.93)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    commands += [("BACKGROUND", (0, row), (-1, row), OOS_FILL) for row in out_of_spec]
    table.setStyle(TableStyle(commands))
    return table


def _result_text(result: QcResult) -> str:
    by = f"{result.analyst.full_name}, {result.tested_at.astimezone(dt.UTC):%Y-%m-%d}"
    method = "" if result.method == result.line.method else f"; method: {result.method}"
    return f"{_value(result)}\n({by}{method})"


def _value(result: QcResult) -> str:
    return f"{result.value} {result.unit}" if result.unit else result.value


def _corrections(session: Session, lot: Lot) -> list[Any]:
    results = lot_results(session, lot)
    by_id = {result.id: result for result in results}
    rows = []
    for result in results:
        old = by_id.get(result.supersedes_id or 0)
        if old is not None:
            rows.append(
                (
                    result.line.test,
                    f"{_value(old)} ({old.analyst.full_name}) was superseded by {_value(result)} "
                    f"({result.analyst.full_name}) on {_utc(result.recorded_at)}.\n"
                    f"Reason: {result.supersede_reason}",
                )
            )
    if not rows:
        return []
    heading = Paragraph("Corrections (superseded results, not current)", _style("heading"))
    return [heading, _key_value_table(rows)]


def _investigations(session: Session, lot: Lot) -> list[Any]:
    """Every out-of-specification result's investigation, its course and its outcome."""
    rows = []
    for found in lot_investigations(session, lot):
        lines = [f"{found.test} {found.value} (result #{found.result_id}, {found.analyst}), "
                 f"against {found.acceptance}; opened {_utc(found.opened_at)}."]  # fmt: skip
        if found.cause:
            lines.append(f"Laboratory cause ({found.cause_by}): {found.cause}")
        if found.finding:
            lines.append(f"Phase II, {found.deviation} ({found.finding_by}): {found.finding}")
        if found.outcome is None:
            lines.append("OPEN: the lot cannot be released.")
        else:
            signer = found.signature["name"] if found.signature else found.closed_by
            lines.append(
                f"Outcome: {found.outcome}, signed by {signer} on {_utc(found.closed_at)}. "
                f"Reason: {found.reason}"
            )
        rows.append((found.label, "\n".join(lines)))
    if not rows:
        return []
    heading = Paragraph("Out-of-specification investigations", _style("heading"))
    return [heading, _key_value_table(rows)]


def _deviations(session: Session, lot: Lot) -> list[Any]:
    rows = []
    for deviation in lot_deviations(session, lot):
        closed = (
            f"closed by {deviation.closed_by.full_name} on {_utc(deviation.closed_at)}"
            if deviation.closed_by is not None and deviation.closed_at is not None
            else "OPEN"
        )
        rows.append(
            (
                deviation_label(lot, deviation),
                f"{deviation.severity}: {deviation.description} ({closed})",
            )
        )
    if not rows:
        return []
    return [Paragraph("Deviations", _style("heading")), _key_value_table(rows)]


def _decisions(session: Session, lot: Lot) -> list[Any]:
    decisions = lot_decisions(session, lot)
    if not decisions:
        return [Paragraph(_text("No QA decision has been signed for this lot."), _style("body"))]
    return [block for decision in decisions for block in _signature_block(decision)]


def _signature_block(decision: ReleaseDecision) -> Sequence[Any]:
    rows: list[tuple[str, Any]] = [
        ("Decision", _status_text(decision.decision)),
        ("Signed by", decision.signer_name),
        ("Signed at", _utc(decision.signed_at)),
        ("Meaning", decision.meaning),
    ]
    if decision.reason:
        rows.append(("Reason", decision.reason))
    if decision.subject_code:
        rows += [
            ("For subject", decision.subject_code),
            ("Requested by", f"{decision.physician_name} ({decision.physician_request_ref})"),
            ("Risk evaluation", decision.risk_evaluation or ""),
        ]
    if decision.recall_scope:
        rows.append(("Recall scope", decision.recall_scope))
    rows.append(("Ledger event", Paragraph(decision.event_hash, _style("mono"))))
    return [_key_value_table(rows), Spacer(1, 3 * mm)]


def _key_value_table(rows: Sequence[tuple[str, Any]]) -> Table:
    cells = [
        [_cell(key, "key"), value if isinstance(value, Paragraph) else _cell(value)]
        for key, value in rows
    ]
    table = Table(cells, colWidths=[40 * mm, 134 * mm])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
            ]
        )
    )
    return table


def _page_decoration(lot: Lot, generated: dt.datetime) -> Callable[[Any, Any], None]:
    watermark = None if lot.status in RELEASED else f"NOT RELEASED — {_status_text(lot.status)}"

    def decorate(canvas: Any, document: Any) -> None:
        canvas.saveState()
        if watermark:
            canvas.setFillColor(WATERMARK)
            canvas.setFont(BOLD, 40)
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(45)
            canvas.drawCentredString(0, 0, watermark)
            canvas.rotate(-45)
            canvas.translate(-A4[0] / 2, -A4[1] / 2)
        canvas.setFillColor(colors.grey)
        canvas.setFont(FONT, 7)
        canvas.drawString(
            18 * mm,
            10 * mm,
            f"celltrail · Certificate of Analysis · lot {lot.number} · "
            f"generated {_utc(generated)} · page {document.page}",
        )
        canvas.restoreState()

    return decorate


def _cell(text: str, style: str = "body") -> Paragraph:
    return Paragraph(_text(text).replace("\n", "<br/>"), _style(style))


def _text(text: str) -> str:
    """Paragraph markup for plain text, every character in a font that has it."""
    text = re.sub("[⁰¹²³⁴⁵⁶⁷⁸⁹]+", lambda run: "^" + run.group().translate(SUPERSCRIPTS), text)
    widths = _vera_glyphs()
    out = []
    for char in text:
        if ord(char) in widths or char == "\n":
            out.append(escape(char))
        elif unicodedata.east_asian_width(char) in ("W", "F"):
            out.append(f'<font name="{CJK}">{escape(char)}</font>')
        else:
            out.append(escape(_ascii(char)))
    return "".join(out).replace(f'</font><font name="{CJK}">', "")


def _ascii(char: str) -> str:
    return unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode() or "?"


def _bank_text(bank: CellBank) -> str:
    passage = f", passage {bank.passage}" if bank.passage is not None else ""
    return f"{bank.code} ({bank.kind.replace('_', ' ')}{passage})"


def _status_text(status: str) -> str:
    return status.replace("_", " ")


def _utc(moment: dt.datetime | None) -> str:
    return "—" if moment is None else f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


@cache
def _style(name: str) -> ParagraphStyle:
    base = ParagraphStyle(name, fontName=FONT, fontSize=8.5, leading=11)
    overrides: dict[str, dict[str, Any]] = {
        "title": {"fontName": BOLD, "fontSize": 17, "leading": 22, "spaceAfter": 8},
        "heading": {"fontName": BOLD, "fontSize": 11, "leading": 15, "spaceBefore": 8},
        "banner": {"fontName": BOLD, "fontSize": 13, "leading": 16, "alignment": TA_CENTER},
        "th": {"fontName": BOLD},
        "key": {"fontName": BOLD},
        "mono": {"fontName": MONO, "fontSize": 8},
    }
    for key, value in overrides.get(name, {}).items():
        setattr(base, key, value)
    return base


@cache
def _vera_glyphs() -> frozenset[int]:
    return frozenset(pdfmetrics.getFont(FONT).face.charWidths)


@cache
def _register_fonts() -> None:
    fonts = Path(reportlab.__file__).parent / "fonts"
    pdfmetrics.registerFont(TTFont(FONT, str(fonts / "Vera.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(fonts / "VeraBd.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)
    pdfmetrics.registerFont(UnicodeCIDFont(CJK))
