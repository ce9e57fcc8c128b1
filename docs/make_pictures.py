"""Draw the pictures of the docs: pages rendered here, read and drawn by rythmiq itself.

    python docs/make_pictures.py [--out docs/img]        # or: nox -s pictures

The pages are a synthetic invoice drawn with Pillow (no dev data, nothing licensed), read by
the real default OCR engine through ``rythmiq.process``. Every picture is the library's own
output:

- ``ocr_boxes.png``: :func:`rythmiq.viz.draw_ocr` of the invoice's result (docs/ocr.md);
- ``normalize_before_after.png``: a phone-like photo of the invoice (pixels stored sideways
  with EXIF orientation 6, tilted, dim, unevenly lit) beside the normalized image
  ``process()`` made of it (docs/normalize.md);
- ``searchable_pdf.png``: page 1 of the searchable PDF the pipeline stored, rendered by
  pdfium, and the same page with its invisible text layer highlighted and a search hit
  marked (docs/documents.md);
- ``card.html``: the notebook card, ``ProcessResult._repr_html_()``, which docs/index.md
  includes as raw HTML (no browser is needed to make it).

It prints one line per file with its size, and what the pipeline did to the photo.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

if TYPE_CHECKING:
    from rythmiq import ProcessResult

REPO = Path(__file__).resolve().parent.parent

# A4 at 150 dpi: large enough for the engine, small enough to draw and read in seconds.
PAGE_SIZE = (1240, 1754)
PAGE_DPI = 150
# The word the PDF picture searches for in the text layer.
SEARCH_WORD = "Total"
# PNGs are written with at most this many colours; the docs keep each under PNG_BUDGET bytes.
PNG_COLORS = 64
PNG_BUDGET = 150_000
# A phone's 12-megapixel portrait shot: larger than the default box, so it is resized.
PHOTO_SIZE = (3000, 4000)
DESK = (118, 112, 104)
INK = (24, 24, 28)
MUTED = (90, 96, 104)

# (x, y, text, font size) on the 1240 x 1754 page; x and y in pixels.
INVOICE: list[tuple[int, int, str, int]] = [
    (110, 120, "HARBOUR LANE STATIONERY", 54),
    (110, 200, "12 Harbour Road, Bristol BS1 4QA", 28),
    (110, 244, "orders@harbourlane.example   0117 496 0213", 28),
    (110, 360, "INVOICE 2024-0117", 42),
    (760, 368, "Date: 14 March 2024", 28),
    (110, 450, "Bill to: Quarterly Archive Office", 28),
    (110, 494, "3 Mill Lane, Bath BA1 2QP", 28),
    (110, 610, "Item", 30),
    (700, 610, "Qty", 30),
    (840, 610, "Price", 30),
    (1000, 610, "Amount", 30),
    (110, 690, "Archive boxes, A4", 30),
    (710, 690, "12", 30),
    (850, 690, "4.50", 30),
    (1010, 690, "54.00", 30),
    (110, 760, "Acid-free paper, 500 sheets", 30),
    (720, 760, "6", 30),
    (850, 760, "8.20", 30),
    (1010, 760, "49.20", 30),
    (110, 830, "Index cards, pack of 100", 30),
    (710, 830, "10", 30),
    (850, 830, "2.46", 30),
    (1010, 830, "24.60", 30),
    (700, 940, "Total due", 34),
    (990, 940, "127.80", 34),
    (110, 1090, "Payment within ten days to account 40-11-62 0931 7702.", 28),
    (110, 1134, "Thank you for your order.", 28),
]
RULES = [(110, 665, 1130), (110, 905, 1130)]  # (x0, y, x1): the table's horizontal lines


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` px: the same on every machine."""
    return ImageFont.load_default(size=size)


def render_invoice(*, size: tuple[int, int] = PAGE_SIZE) -> Image.Image:
    """The synthetic invoice, an RGB page of ``size`` pixels (laid out for A4 at 150 dpi)."""
    page = Image.new("RGB", PAGE_SIZE, "white")
    draw = ImageDraw.Draw(page)
    for x, y, text, px in INVOICE:
        draw.text((x, y), text, fill=INK, font=font(px))
    for x0, y, x1 in RULES:
        draw.line([(x0, y), (x1, y)], fill=INK, width=2)
    return page if size == PAGE_SIZE else page.resize(size, Image.Resampling.LANCZOS)


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    """``image`` encoded as ``fmt`` (Pillow's save parameters)."""
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def photo_of(
    page: Image.Image,
    *,
    size: tuple[int, int] = PHOTO_SIZE,
    tilt: float = 4.0,
    light: float = 0.62,
) -> Image.Image:
    """``page`` as a phone might photograph it, upright pixels of ``size`` (3:4): on a desk,
    tilted by ``tilt`` degrees counter-clockwise, dimmed to ``light`` and lit unevenly, with
    sensor noise (:func:`phone_jpeg` stores them sideways)."""
    w, h = page.size
    desk = Image.new("RGB", (round(h * 1.08 * 3 / 4), round(h * 1.08)), DESK)
    desk.paste(page, ((desk.width - w) // 2, (desk.height - h) // 2))
    tilted = desk.rotate(tilt, resample=Image.Resampling.BICUBIC, fillcolor=DESK)
    shot = tilted.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1.2))
    pixels = np.asarray(shot, dtype=np.float32)
    ys, xs = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    # Brighter at the top left, where the window is; the far corner gets about 70 % of it.
    falloff = 1.0 - 0.3 * (xs / pixels.shape[1] + ys / pixels.shape[0]) / 2
    noise = np.random.default_rng(7).normal(0.0, 4.0, pixels.shape)
    dim = pixels * (light * falloff)[..., None] + noise
    return Image.fromarray(np.clip(dim + 0.5, 0, 255).astype(np.uint8))


def phone_jpeg(photo: Image.Image) -> bytes:
    """``photo`` stored as a phone stores a portrait shot: the pixels turned on their side and
    EXIF orientation 6 ("turn 90 degrees clockwise to view") and 72 dpi declared."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    sideways = photo.transpose(Image.Transpose.ROTATE_90)
    return encode(sideways, "JPEG", quality=88, exif=exif.tobytes(), dpi=(72, 72))


def caption(image: Image.Image, lines: Sequence[str], *, width: int) -> Image.Image:
    """``image`` scaled to ``width`` px wide, with ``lines`` of text under it."""
    scaled = image.convert("RGB")
    scaled = scaled.resize(
        (width, round(image.height * width / image.width)), Image.Resampling.LANCZOS
    )
    line_h = 24
    out = Image.new("RGB", (width, scaled.height + 16 + line_h * len(lines)), "white")
    out.paste(scaled, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(lines):
        fill = INK if i == 0 else MUTED
        draw.text((0, scaled.height + 10 + i * line_h), text, fill=fill, font=font(18))
    return out


def side_by_side(panels: Sequence[Image.Image], *, gap: int = 36) -> Image.Image:
    """``panels`` in a row on white, top-aligned, an arrow in each gap."""
    height = max(p.height for p in panels)
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    out = Image.new("RGB", (width + 24, height + 24), "white")
    draw = ImageDraw.Draw(out)
    x = 12
    for i, panel in enumerate(panels):
        out.paste(panel, (x, 12))
        x += panel.width
        if i < len(panels) - 1:
            y = 12 + panels[0].height // 2
            draw.line([(x + 6, y), (x + gap - 8, y)], fill=MUTED, width=3)
            draw.polygon([(x + gap - 6, y), (x + gap - 16, y - 7), (x + gap - 16, y + 7)], MUTED)
            x += gap
    return out


def before_after(photo_bytes: bytes, result: ProcessResult, *, width: int = 420) -> Image.Image:
    """The photo's stored pixels beside ``result``'s normalized image, each captioned with what
    the file and the result say."""
    with Image.open(io.BytesIO(photo_bytes)) as im:
        before = im.convert("RGB")
        orientation = im.getexif().get(0x0112, 1)
    after = Image.open(io.BytesIO(result.image.data)).convert("RGB")
    img = result.image
    turn = result.pages[0].orientation
    left = [
        "input: a phone-like photo",
        f"{before.width} x {before.height} px JPEG, {len(photo_bytes) // 1024} KB",
        f"EXIF orientation {orientation}, 72 dpi declared",
        f"quality {result.quality.score:.2f} ({'pass' if result.quality.passed else 'fail'})",
    ]
    right = [
        "result.image: normalized",
        f"{img.width} x {img.height} px at {img.dpi:.0f} dpi, JPEG q{img.jpeg_quality}, "
        f"{len(img.data) // 1024} KB",
        f"skew {turn.skew:+.1f} deg levelled" if turn is not None else "orientation off",
        ", ".join(img.corrections),
    ]
    return side_by_side([caption(before, left, width=width), caption(after, right, width=width)])


def ocr_picture(result: ProcessResult, *, max_size: int = 900) -> Image.Image:
    """The invoice's preview with its OCR boxes: :func:`rythmiq.viz.draw_ocr`, cropped to the
    part of the page with text."""
    from rythmiq.viz import draw_ocr

    drawn = draw_ocr(result, max_size=max_size)
    if result.ocr is None or not result.ocr.lines:
        return drawn
    scale = drawn.height / result.ocr.height
    bottom = max(y for line in result.ocr.lines for _, y in line.box) * scale
    return drawn.crop((0, 0, drawn.width, min(drawn.height, round(bottom + 40 * scale + 20))))


def pdf_picture(pdf: bytes, *, height: int = 760, word: str = SEARCH_WORD) -> Image.Image:
    """Page 1 of ``pdf`` rendered by pdfium, beside the same render with every text-layer
    rectangle shaded blue (as a viewer shows a selection) and the first hit of ``word`` in
    orange."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        page = doc[0]
        scale = height / page.get_height()
        plain = page.render(scale=scale).to_pil().convert("RGB")
        textpage = page.get_textpage()
        chars = textpage.count_chars()
        rects = [textpage.get_rect(i) for i in range(textpage.count_rects())]
        searcher = textpage.search(word, match_case=True)
        hit = searcher.get_next()
        hit_boxes = [textpage.get_charbox(i) for i in range(hit[0], sum(hit))] if hit else []
        page_h = page.get_height()
    finally:
        doc.close()

    def to_px(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        left, bottom, right, top = box  # PDF points, origin at the bottom left
        return left * scale, (page_h - top) * scale, right * scale, (page_h - bottom) * scale

    shaded = plain.copy().convert("RGBA")
    layer = Image.new("RGBA", shaded.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for box in rects:
        draw.rectangle(to_px(box), fill=(56, 132, 255, 90))
    if hit_boxes:
        xs0, ys0, xs1, ys1 = zip(*(to_px(b) for b in hit_boxes), strict=True)
        hit_box = (min(xs0) - 3, min(ys0) - 3, max(xs1) + 3, max(ys1) + 3)
        draw.rectangle(hit_box, fill=(255, 150, 0, 110), outline=(214, 90, 0, 255), width=2)
    shaded = Image.alpha_composite(shaded, layer).convert("RGB")
    # Both renders end a little below the lowest text: the rest of the A4 page is blank.
    bottom = max(to_px(box)[3] for box in rects) if rects else plain.height
    crop = (0, 0, plain.width, min(plain.height, round(bottom + 0.06 * plain.height)))
    plain, shaded = plain.crop(crop), shaded.crop(crop)
    found = f'search "{word}": found' if hit else f'search "{word}": not found'
    left = ["searchable.pdf, page 1", "as a viewer draws it: the page image"]
    right = [
        "the same page, its text layer selected",
        f"{chars} characters in {len(rects)} text boxes; {found}",
    ]
    width = plain.width
    return side_by_side([caption(plain, left, width=width), caption(shaded, right, width=width)])


def card_html(result: ProcessResult) -> str:
    """The notebook card of ``result`` (its ``_repr_html_``), wrapped for the docs' stylesheet
    (``docs/stylesheets/card.css`` keeps the theme's table styles off it), on one line."""
    card = result._repr_html_().replace("\n", " ")
    return (
        "<!-- Made by docs/make_pictures.py: ProcessResult._repr_html_() of the synthetic "
        'invoice. Do not edit. -->\n<div class="rythmiq-card">' + card + "</div>\n"
    )


def save_png(image: Image.Image, path: Path, *, colors: int = PNG_COLORS) -> int:
    """Write ``image`` as a palette PNG of at most ``colors`` colours; its size in bytes."""
    quantized = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    path.write_bytes(encode(quantized, "PNG", optimize=True))
    return path.stat().st_size


def stored_pdf(result_source: bytes, folder: Path) -> tuple[ProcessResult, bytes]:
    """Run the pipeline on ``result_source`` into a local store in ``folder`` with the text and
    PDF outputs, as ``rythmiq process --pdf --txt --out`` does; the result and the PDF bytes."""
    import rythmiq

    store = rythmiq.Store.open(str(folder))
    result = rythmiq.process(
        result_source,
        options=rythmiq.ProcessOptions(outputs=("txt", "pdf")),
        store=store,
        ids=rythmiq.Ids("docs", "pictures", "invoice"),
        keyring=rythmiq.Keyring.generate("docs-k1"),
    )
    (pdf,) = [a for a in result.artifacts if a.kind == "pdf"]
    return result, store.read(pdf.key)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="output folder")
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    import rythmiq

    invoice = encode(render_invoice(), "PNG", dpi=(PAGE_DPI, PAGE_DPI))
    with tempfile.TemporaryDirectory(prefix="rythmiq-pictures-") as tmp:
        result, pdf = stored_pdf(invoice, Path(tmp))
    photo = phone_jpeg(photo_of(render_invoice()))
    normalized = rythmiq.process(photo, options=rythmiq.ProcessOptions(max_bytes=400_000))

    sizes = {
        "ocr_boxes.png": save_png(ocr_picture(result), out / "ocr_boxes.png"),
        "normalize_before_after.png": save_png(
            before_after(photo, normalized), out / "normalize_before_after.png"
        ),
        "searchable_pdf.png": save_png(pdf_picture(pdf), out / "searchable_pdf.png"),
    }
    (out / "card.html").write_text(card_html(result), encoding="utf-8")
    sizes["card.html"] = (out / "card.html").stat().st_size
    for name, size in sizes.items():
        print(f"wrote {out / name} ({size / 1024:.0f} KB)")
    lines = result.ocr.lines if result.ocr else ()
    lowest = min((line.confidence for line in lines), default=0.0)
    print(
        f"invoice: {len(lines)} OCR lines, lowest confidence {lowest:.2f}, quality "
        f"{result.quality.score:.2f}"
    )
    turn = normalized.pages[0].orientation
    print(
        f"photo: rotation {turn.rotation if turn else None}, skew "
        f"{turn.skew if turn else 0.0:+.1f}, corrections {', '.join(normalized.image.corrections)}"
    )
    over = [name for name, size in sizes.items() if size > PNG_BUDGET]
    if over:
        print(f"make_pictures: over {PNG_BUDGET // 1000} KB: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
