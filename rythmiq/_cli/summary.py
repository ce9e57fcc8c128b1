"""The text ``rythmiq process`` prints for a result when ``--json`` is not given.

Every line passes through :func:`rythmiq._util.printable`: the input's name and the OCR text
come from outside, and a control character in either (an escape sequence, BEL) would reach
the terminal. A text line keeps its tabs; every other line is escaped whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rythmiq._cli.inputs import Input, shown
from rythmiq._redact import redact
from rythmiq._util import printable

if TYPE_CHECKING:
    from rythmiq.results import PageResult, ProcessResult

__all__ = ["summary"]


def _page_summary(page: PageResult, indent: str) -> list[str]:
    q, im = page.quality, page.image
    verdict = "PASS" if q.passed else "FAIL"
    reasons = f" ({', '.join(q.reasons)})" if q.reasons else ""
    lines = [
        f"{indent}quality  {q.score:.2f} {verdict}{reasons}  threshold {q.threshold:.2f}  "
        f"sharpness {q.sharpness:.2f}  exposure {q.exposure:.2f}",
        f"{indent}image    {im.width}x{im.height} at {im.dpi:g} dpi ({im.dpi_source}), "
        f"JPEG q{im.jpeg_quality}, {len(im.data) / 1024:.0f} KiB",
    ]
    o = page.orientation
    if o is not None and (o.rotation or "deskewed" in im.corrections):
        turned = [f"rotated {o.rotation} deg"] if o.rotation else []
        if "deskewed" in im.corrections:
            turned.append(f"deskewed {o.skew:+.1f} deg")
        lines.append(f"{indent}upright  {', '.join(turned)}")
    if page.ocr is None:
        lines.append(f"{indent}ocr      skipped ({page.ocr_skipped_reason})")
    else:
        lines.append(
            f"{indent}ocr      {len(page.ocr.lines)} lines, mean confidence "
            f"{page.ocr.confidence:.2f}, {page.timings.ocr.wall_s:.2f} s"
        )
    return lines


def summary(source: Input, r: ProcessResult) -> str:
    """The lines printed for one input: each page's verdict, the time, artifacts and text."""
    lines = [shown(source)]
    if r.page_count == 1:
        lines.extend(_page_summary(r.pages[0], "  "))
    else:
        failed = sum(not p.quality.passed for p in r.pages)
        verdict = "all pages PASS" if not failed else f"{failed} page(s) FAIL"
        lines.append(f"  {r.page_count} pages ({r.source_format}), quality: {verdict}")
        for page in r.pages:
            lines.append(f"  page {page.index + 1}")
            lines.extend(_page_summary(page, "    "))
    t = r.timings
    lines.append(f"  time     {t.total.wall_s:.2f} s wall, {t.total.cpu_s:.2f} s CPU")
    for artifact in r.artifacts:
        if artifact.kind in ("text", "hocr", "pdf"):
            lines.append(f"  {artifact.kind:<8} {redact(artifact.url)}")
    out = [printable(line) for line in lines]
    text = r.text
    if text:
        out.append("  text:")
        for number, page_text in enumerate(text.split("\f"), start=1):
            if r.page_count > 1:
                out.append(f"    --- page {number} ---")
            out.extend(f"    {printable(line, lines=True)}" for line in page_text.splitlines())
    return "\n".join(out)
