"""HTML fragments for notebooks: the ``_repr_html_`` of results, with inline styles only.

Every string that can come from outside rythmiq (OCR text, reasons, ids, URLs, engine names)
goes through :func:`html.escape`; OCR text in particular is whatever the page said. Notebooks
strip scripts and may not load external CSS, so every style is inline, and the container sets
its own text and background colours so that it reads the same in light and dark themes.
"""

from __future__ import annotations

import base64
import io
import math
from html import escape
from typing import TYPE_CHECKING

from rythmiq._errors import RythmiqError
from rythmiq._util import format_bytes
from rythmiq.quality import (
    BLACK_POINT_GATE,
    RANGE_GATE,
    SHARPNESS_GATE,
    WHITE_POINT_GATE,
    QualityReport,
)
from rythmiq.viz import CONFIDENCE_HIGH, CONFIDENCE_LOW, confidence_color, draw_ocr

if TYPE_CHECKING:
    from rythmiq.ocr import OcrResult
    from rythmiq.results import ProcessResult, Timings

__all__ = ["ocr_result_html", "process_result_html", "quality_report_html"]

THUMBNAIL_SIZE = 480
# JPEG qualities tried in turn until the thumbnail fits THUMBNAIL_BUDGET bytes; a 480 px text
# page is usually 25-45 KB at the first, and base64 adds a third.
THUMBNAIL_QUALITIES = (75, 60, 45, 30)
THUMBNAIL_BUDGET = 60_000
MAX_TABLE_ROWS = 200
MAX_TEXT_ROWS = 12
MAX_ARTIFACTS = 10
_MAX_CELL_CHARS = 300
# Laplacian variances are drawn on a log scale up to this value: sharp pages at the 1024 px
# analysis size reach the low thousands, and the gate (250) lands near the middle.
_VARIANCE_SCALE = 1e5

_FG = "#1f2328"
_MUTED = "#59636e"
_BG = "#ffffff"
_BORDER = "#d1d9e0"
_TRACK = "#e6eaef"
_NEUTRAL = "#4a7bd0"
_PASS = "#1a7f37"
_FAIL = "#cf222e"
_FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif"
_MONO = "ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"
_CELL = f"padding:1px 8px 1px 0;text-align:left;color:{_FG};border:none"
_NUM = f"padding:1px 8px 1px 0;text-align:right;color:{_FG};border:none"


# --------------------------------------------------------------------------- building blocks


def _container(body: str) -> str:
    return (
        f'<div style="font-family:{_FONT};font-size:13px;line-height:1.45;color:{_FG};'
        f"background:{_BG};border:1px solid {_BORDER};border-radius:6px;padding:10px 14px;"
        f'max-width:1000px;box-sizing:border-box;text-align:left">{body}</div>'
    )


def _heading(text: str) -> str:
    return (
        f'<div style="font-weight:600;font-size:13px;margin:10px 0 4px 0;color:{_FG}">{text}</div>'
    )


def _muted(text: str) -> str:
    return f'<span style="color:{_MUTED}">{text}</span>'


def _badge(text: str, colour: str) -> str:
    return (
        f'<span style="display:inline-block;padding:0 7px;border-radius:10px;background:{colour};'
        f'color:#ffffff;font-weight:600;font-size:12px">{escape(text)}</span>'
    )


def _table(rows: list[str]) -> str:
    return (
        f'<table style="border-collapse:collapse;margin:0;background:{_BG};color:{_FG};'
        f'font-size:12px;border:none">{"".join(rows)}</table>'
    )


def _tr(cells: list[str]) -> str:
    return f'<tr style="background:{_BG};border:none">{"".join(cells)}</tr>'


def _td(content: str, style: str = _CELL) -> str:
    return f'<td style="{style}">{content}</td>'


def _th(content: str, style: str = _CELL) -> str:
    return f'<th style="{style};font-weight:600;border-bottom:1px solid {_BORDER}">{content}</th>'


def _fraction(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, value))


def _bar(fraction: float, colour: str, marker: float | None = None) -> str:
    """A horizontal bar filled to ``fraction``, with an optional tick at ``marker``."""
    tick = ""
    if marker is not None:
        tick = (
            f'<div style="position:absolute;left:{100 * _fraction(marker):.1f}%;top:-3px;'
            f'bottom:-3px;width:2px;background:{_FG}"></div>'
        )
    return (
        f'<div style="position:relative;width:160px;height:10px;background:{_TRACK};'
        f'border-radius:3px">'
        f'<div style="width:{100 * _fraction(fraction):.1f}%;height:100%;background:{colour};'
        f'border-radius:3px"></div>{tick}</div>'
    )


def _log_fraction(variance: float) -> float:
    if not math.isfinite(variance) or variance <= 0:
        return 0.0
    return math.log10(1.0 + variance) / math.log10(1.0 + _VARIANCE_SCALE)


def _clip(text: str, limit: int = _MAX_CELL_CHARS) -> str:
    """Shorten, then escape: cutting after escaping could split an entity."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return escape(text)


def _confidence(confidence: float) -> str:
    """A square in the confidence's box colour (see :mod:`rythmiq.viz`), then the number."""
    r, g, b = confidence_color(confidence)
    return f'<span style="color:rgb({r},{g},{b})">&#9632;</span>&nbsp;{confidence:.2f}'


# --------------------------------------------------------------------------- quality


def _quality_body(report: QualityReport) -> str:
    verdict = _badge("PASS", _PASS) if report.passed else _badge("FAIL", _FAIL)
    relation = "&ge;" if report.passed else "&lt;"
    head = _heading(
        f"Quality {report.score:.3f} {relation} threshold {report.threshold:.2f} {verdict}"
    )

    def score_row(name: str, value: float) -> str:
        colour = _PASS if value >= report.threshold else _FAIL
        return _tr(
            [
                _td(name),
                _td(_bar(value, colour, report.threshold)),
                _td(f"{value:.3f}", _NUM),
                _td(_muted(f"threshold {report.threshold:.2f}")),
            ]
        )

    rows = [
        _tr([_th("metric"), _th("", _CELL), _th("value", _NUM), _th("", _CELL)]),
        score_row("score", report.score),
        score_row("sharpness", report.sharpness),
        score_row("exposure", report.exposure),
    ]
    for name, fraction, value, note, marker in _raw_measures(report):
        rows.append(
            _tr(
                [
                    _td(name),
                    _td(_bar(fraction, _NEUTRAL, marker)),
                    _td(value, _NUM),
                    _td(_muted(note)),
                ]
            )
        )
    reasons = ", ".join(escape(r) for r in report.reasons) if report.reasons else "none"
    w, h = report.analysis_size
    foot = (
        f'<div style="margin-top:4px">Reasons: <b>{reasons}</b> '
        f"{_muted(f'(measured at {w}&times;{h} px)')}</div>"
    )
    return head + _table(rows) + foot


def _raw_measures(report: QualityReport) -> list[tuple[str, float, str, str, float | None]]:
    """The measures behind the scores: ``(name, bar fraction, value, note, gate marker)``."""
    st = report.exposure_stats
    gate = _log_fraction(SHARPNESS_GATE)
    tile_lv, lv = report.tile_laplacian_variance, report.laplacian_variance
    return [
        (
            "tile Laplacian variance",
            _log_fraction(tile_lv),
            f"{tile_lv:.1f}",
            f"log scale; gate {SHARPNESS_GATE:g} scores 0.80",
            gate,
        ),
        ("Laplacian variance", _log_fraction(lv), f"{lv:.1f}", "whole image, log scale", gate),
        (
            "content fraction",
            report.content_fraction,
            f"{report.content_fraction:.3f}",
            "tiles holding content",
            None,
        ),
        (
            "white point",
            st.white_point,
            f"{st.white_point:.3f}",
            f"paper; gate {WHITE_POINT_GATE:g} (underexposed below)",
            WHITE_POINT_GATE,
        ),
        (
            "black point",
            st.black_point,
            f"{st.black_point:.3f}",
            f"ink; gate {BLACK_POINT_GATE:g} (overexposed above), counted &times; ink trust",
            BLACK_POINT_GATE,
        ),
        (
            "ink trust",
            st.ink_trust,
            f"{st.ink_trust:.2f}",
            "share of the black point read as exposure: 1 on sharp edges, 0 on blurred",
            None,
        ),
        (
            "dynamic range",
            st.dynamic_range,
            f"{st.dynamic_range:.3f}",
            f"gate {RANGE_GATE:g} (low contrast below)",
            RANGE_GATE,
        ),
        ("mean luminance", st.mean, f"{st.mean:.3f}", "", None),
        ("RMS contrast", st.std, f"{st.std:.3f}", "", None),
        ("shadows clipped", st.shadows_clipped, f"{st.shadows_clipped:.3f}", "&le; 2/255", None),
        (
            "highlights clipped",
            st.highlights_clipped,
            f"{st.highlights_clipped:.3f}",
            "&ge; 253/255",
            None,
        ),
    ]


def quality_report_html(report: QualityReport) -> str:
    """The notebook display of a :class:`~rythmiq.quality.QualityReport`."""
    return _container(_quality_body(report))


# --------------------------------------------------------------------------- OCR


def _ocr_summary(ocr: OcrResult) -> str:
    n = len(ocr.lines)
    low = sum(1 for ln in ocr.lines if ln.confidence < CONFIDENCE_LOW)
    medium = sum(1 for ln in ocr.lines if CONFIDENCE_LOW <= ln.confidence < CONFIDENCE_HIGH)
    engine = f", engine {escape(ocr.engine)}" if ocr.engine else ""
    return _heading(
        f"OCR: {n} line{'s' if n != 1 else ''}, mean confidence "
        f"{_confidence(ocr.confidence)} "
        + _muted(
            f"({low} below {CONFIDENCE_LOW:g}, {medium} below {CONFIDENCE_HIGH:g}; "
            f"boxes on {ocr.width}&times;{ocr.height} px{engine})"
        )
    )


def ocr_result_html(ocr: OcrResult) -> str:
    """The notebook display of an :class:`~rythmiq.ocr.OcrResult`: a table of its lines."""
    rows = [_tr([_th("#", _NUM), _th("text"), _th("confidence", _NUM)])]
    for i, line in enumerate(ocr.lines[:MAX_TABLE_ROWS], 1):
        rows.append(
            _tr(
                [
                    _td(_muted(str(i)), _NUM),
                    _td(_clip(line.text), f"{_CELL};white-space:pre-wrap;word-break:break-word"),
                    _td(_confidence(line.confidence), _NUM),
                ]
            )
        )
    body = _ocr_summary(ocr) + (_table(rows) if ocr.lines else _muted("No text found."))
    more = len(ocr.lines) - MAX_TABLE_ROWS
    if more > 0:
        body += f'<div style="margin-top:4px">{_muted(f"... {more} more lines")}</div>'
    return _container(body)


def _ocr_excerpt(ocr: OcrResult) -> str:
    rows = ocr.text.split("\n") if ocr.lines else []
    shown = "\n".join(_clip(row, 200) for row in rows[:MAX_TEXT_ROWS])
    body = _ocr_summary(ocr)
    if not rows:
        return body + _muted("No text found.")
    body += (
        f'<pre style="margin:2px 0;padding:6px 8px;background:#f6f8fa;color:{_FG};'
        f"border:1px solid {_BORDER};border-radius:4px;font-family:{_MONO};font-size:12px;"
        f'white-space:pre-wrap;word-break:break-word;max-height:260px;overflow:auto">'
        f"{shown}</pre>"
    )
    if len(rows) > MAX_TEXT_ROWS:
        body += _muted(f"... {len(rows) - MAX_TEXT_ROWS} more rows")
    return body


_SKIP_REASONS = {
    "disabled": "OCR was turned off (ProcessOptions.ocr=False).",
    "quality": "the quality check failed and on_quality_fail='skip_ocr'.",
}


def _ocr_skipped(reason: str | None) -> str:
    why = _SKIP_REASONS.get(reason or "", escape(reason) if reason else "no reason recorded.")
    return _heading("OCR: skipped") + f"<div>{_muted('Reason:')} {why}</div>"


# --------------------------------------------------------------------------- process result


def _thumbnail(result: ProcessResult) -> str:
    try:
        im = draw_ocr(result, max_size=THUMBNAIL_SIZE)
    except RythmiqError as exc:
        return _muted(f"No preview: {escape(exc.message)}")
    data = b""
    for quality in THUMBNAIL_QUALITIES:
        buf = io.BytesIO()
        # No chroma subsampling: 4:2:0 smears the 2 px coloured box edges into grey.
        im.save(buf, "JPEG", quality=quality, optimize=True, subsampling=0)
        data = buf.getvalue()
        if len(data) <= THUMBNAIL_BUDGET:
            break
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<img src="{uri}" width="{im.width}" height="{im.height}" '
        f'alt="preview with OCR boxes" style="display:block;max-width:100%;height:auto;'
        f'border:1px solid {_BORDER};background:{_BG}">'
    )


def _image_body(result: ProcessResult) -> str:
    img = result.image
    declared = ""
    if img.declared_dpi is not None:
        declared = f", declared {img.declared_dpi[0]:g}&times;{img.declared_dpi[1]:g}"
    budget = "" if img.fits_budget else f" {_badge('over budget', _FAIL)}"
    corrections = ", ".join(escape(c) for c in img.corrections) or "none"
    ow, oh = img.original_size
    lines = [
        f"<b>{img.width}&times;{img.height}</b> px at <b>{img.dpi:g} dpi</b> "
        f"{_muted(f'(dpi from {escape(img.dpi_source)}{declared})')}",
        f"JPEG quality {img.jpeg_quality}, {format_bytes(len(img.data))}, "
        f"{img.encodes} encode{'s' if img.encodes != 1 else ''}{budget}",
        f"original {ow}&times;{oh} px; corrections: {corrections}",
    ]
    orientation = result.pages[0].orientation
    if orientation is not None:
        lines.append(
            f"upright: turned {orientation.rotation}&deg; clockwise, skew "
            f"{orientation.skew:+.2f}&deg; {_muted(f'({escape(orientation.method)})')}"
        )
    src = escape(result.source_format) if result.source_format else "array"
    source = f"source {src}"
    if result.source_sha256:
        source += f", sha256 {escape(result.source_sha256[:16])}&hellip;"
    lines.append(_muted(source))
    if result.ids is not None:
        ids = result.ids
        lines.append(
            _muted(
                f"user {escape(ids.user_id)}, job {escape(ids.job_id)}, "
                f"document {escape(ids.document_id)}"
            )
        )
    body = _heading("Normalized image") + "".join(f"<div>{x}</div>" for x in lines)
    if result.artifacts:
        items = "".join(
            f'<li>{escape(a.kind)}: <code style="color:{_FG};background:transparent">'
            f"{_clip(a.url, 200)}</code> {_muted(format_bytes(a.size))}</li>"
            for a in result.artifacts[:MAX_ARTIFACTS]
        )
        more = len(result.artifacts) - MAX_ARTIFACTS
        if more > 0:
            items += f"<li>{_muted(f'... {more} more')}</li>"
        body += (
            _heading(f"Artifacts ({len(result.artifacts)})")
            + f'<ul style="margin:0;padding-left:18px;color:{_FG}">{items}</ul>'
        )
    return body


def _timings_body(timings: Timings) -> str:
    total = timings.total.wall_s
    rows = [_tr([_th("stage"), _th("", _CELL), _th("wall s", _NUM), _th("CPU s", _NUM)])]
    for name in ("load", "quality", "engine", "orient", "normalize", "ocr", "total"):
        t = getattr(timings, name)
        share = t.wall_s / total if total > 0 else 0.0
        rows.append(
            _tr(
                [
                    _td(name),
                    _td(_bar(share, _NEUTRAL)),
                    _td(f"{t.wall_s:.3f}", _NUM),
                    _td(f"{t.cpu_s:.3f}", _NUM),
                ]
            )
        )
    return _heading("Timings") + _table(rows)


def process_result_html(result: ProcessResult) -> str:
    """The notebook display of a :class:`~rythmiq.ProcessResult`."""
    ocr = (
        _ocr_excerpt(result.ocr)
        if result.ocr is not None
        else _ocr_skipped(result.ocr_skipped_reason)
    )
    left = f'<div style="flex:0 1 {THUMBNAIL_SIZE}px;min-width:200px">{_thumbnail(result)}</div>'
    document = ""
    if result.page_count > 1:
        passing = sum(p.quality.passed for p in result.pages)
        document = (
            f"<div><b>{result.page_count} pages</b>, {passing} of {result.page_count} pass "
            f"the quality gate. {_muted('Showing page 1; see result.pages for the others.')}"
            "</div>"
        )
    right = (
        '<div style="flex:1 1 380px;min-width:300px">'
        + document
        + _quality_body(result.quality)
        + _image_body(result)
        + ocr
        + _timings_body(result.timings)
        + "</div>"
    )
    return _container(
        f'<div style="display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start">'
        f"{left}{right}</div>"
    )
