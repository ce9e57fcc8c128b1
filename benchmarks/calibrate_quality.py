"""Calibrate the sharpness gate: OCR word-F1 of dev pages against the tile Laplacian variance.

Each dev page is blurred with growing Gaussian sigma; for every copy the script records the
quality metrics and the PaddleOCR word-F1 against ground truth. The gate (``SHARPNESS_GATE``)
is the variance below which OCR loses more than 10 % of the page's sharp-copy F1.

    python benchmarks/calibrate_quality.py [--pages sroie_070 ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from _dev import dev_pages

DEFAULT_PAGES = [
    "sroie_070",
    "sroie_181",
    "sroie_417",
    "sroie_467",
    "sroie_008",
    "scribe_deposition_01",
    "tess_segmodeimg",
]
SIGMAS = [0.0, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", nargs="*", default=DEFAULT_PAGES)
    ap.add_argument("--sigmas", nargs="*", type=float, default=SIGMAS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the rows here as JSON")
    args = ap.parse_args()

    import cv2

    from rythmiq import load_image
    from rythmiq.metrics import word_f1
    from rythmiq.ocr import EngineConfig, PaddleEngine
    from rythmiq.quality import score_quality

    pages = dev_pages(args.pages)
    if not pages:
        print("no dev pages found (../shared/data/dev/ocr)", file=sys.stderr)
        return 1
    rows = []
    with PaddleEngine(EngineConfig(engine="paddle", threads=args.threads)) as engine:
        for path, truth in pages:
            image = load_image(str(path)).pixels
            base_f1 = None
            for sigma in args.sigmas:
                img = image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma)
                q = score_quality(img)
                f1 = word_f1(engine.recognize(img).text, truth)
                base_f1 = f1 if base_f1 is None else base_f1
                row = {
                    "page": path.stem,
                    "sigma": sigma,
                    "size": list(image.shape[1::-1]),
                    "tile_var": round(q.tile_laplacian_variance, 1),
                    "sharpness": round(q.sharpness, 3),
                    "score": round(q.score, 3),
                    "f1": round(f1, 3),
                    "rel_f1": round(f1 / base_f1, 3) if base_f1 else 0.0,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    ok = [r["tile_var"] for r in rows if r["rel_f1"] >= 0.9]
    bad = [r["tile_var"] for r in rows if r["rel_f1"] < 0.9]
    print(
        f"\nrel_f1>=0.9: n={len(ok)} min var={min(ok, default=0):.0f} "
        f"p10={np.percentile(ok, 10) if ok else 0:.0f}"
    )
    print(
        f"rel_f1<0.9:  n={len(bad)} max var={max(bad, default=0):.0f} "
        f"p90={np.percentile(bad, 90) if bad else 0:.0f}"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
