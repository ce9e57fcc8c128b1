"""Quickstart: score, normalize and read one document image.

python examples/quickstart.py                       # the bundled sample invoice
python examples/quickstart.py scan.jpg --overlay boxes.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import rythmiq
from rythmiq.viz import draw_ocr

SAMPLE = Path(__file__).resolve().parent / "data" / "sample.jpg"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", default=str(SAMPLE), help="an image file")
    ap.add_argument("--overlay", type=Path, help="save the page with its OCR boxes here")
    args = ap.parse_args()

    try:
        result = rythmiq.process(args.image)
    except rythmiq.RythmiqError as exc:  # every deliberate error has a stable code
        print(f"{args.image}: {exc.code}: {exc.message}")
        return int(exc.exit_code)

    q = result.quality
    print(f"quality  {q.score:.2f} {'PASS' if q.passed else 'FAIL'} (threshold {q.threshold})")
    print(f"         sharpness {q.sharpness:.2f}, exposure {q.exposure:.2f}, reasons {q.reasons}")
    im = result.image
    print(f"image    {im.width}x{im.height} at {im.dpi:g} dpi, {len(im.data) // 1024} KiB JPEG")
    if result.ocr is not None:
        print(
            f"ocr      {len(result.ocr.lines)} lines, mean confidence {result.ocr.confidence:.2f}"
        )
        for line in result.ocr.lines[:5]:
            print(f"         {line.confidence:.2f}  {line.text}")
    if args.overlay is not None:
        draw_ocr(result).save(args.overlay)
        print(f"overlay  {args.overlay}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
