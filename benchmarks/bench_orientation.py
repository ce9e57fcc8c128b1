"""Orientation benchmark: word-F1 of turned pages after detect+apply, accuracy, overhead, skew.

    python benchmarks/bench_orientation.py [--pages sroie_070 ...] [--threads 1] [--json out.json]

For every dev OCR page (../shared/data/dev/ocr), with one PaddleEngine:

* word-F1 of the upright page as loaded, with no orientation handling;
* the page turned 90, 180 and 270 degrees counter-clockwise in memory (``np.rot90``), then
  ``detect_orientation`` + ``apply_orientation`` + OCR: the detected rotation (expected 90,
  180, 270) and the word-F1;
* the shipped rotated copies of scribe_multicol_04 (``*_rot90ccw``, ``*_rot180``) as extra
  inputs, also OCR'd as they are;
* overhead on the upright page: detect+apply time over the OCR time of the same page,
  measured side by side (detect, OCR, detect again; the median of the detect runs);
* the page skewed by +3 or -3 degrees (alternating; Pillow, white fill): the skew error and
  the word-F1 after correction.

Images are measured as loaded (most are smaller than the 2480x3508 box the product
normalizes into, none larger), so the overhead is that of pages of these sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _dev import DEV, dev_pages

ROTATED = {"scribe_multicol_04_rot90ccw": 90, "scribe_multicol_04_rot180": 180}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", nargs="*", help="dev page stems (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skew", type=float, default=3.0, help="skew test angle; 0 skips it")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    import numpy as np
    from PIL import Image

    from rythmiq import load_image
    from rythmiq.metrics import word_f1
    from rythmiq.ocr import EngineConfig, PaddleEngine
    from rythmiq.orientation import apply_orientation, detect_orientation

    pages = dev_pages(args.pages)
    if not pages:
        print(f"no dev pages at {DEV}", file=sys.stderr)
        return 1
    engine = PaddleEngine(EngineConfig(engine="paddle", threads=args.threads))
    first = load_image(str(pages[0][0])).pixels
    engine.recognize(first[: min(400, first.shape[0])])  # first predict pays kernel set-up

    def timed(fn: Any, *a: Any) -> tuple[float, Any]:
        t = time.perf_counter()
        out = fn(*a)
        return time.perf_counter() - t, out

    def orient(pixels: Any) -> tuple[float, Any, Any]:
        t = time.perf_counter()
        o = detect_orientation(pixels, engine)
        fixed = apply_orientation(pixels, o)
        return time.perf_counter() - t, o, fixed

    rows = []
    for n, (path, truth) in enumerate(pages, 1):
        name = path.stem
        pixels = np.ascontiguousarray(load_image(str(path)).pixels)
        row: dict[str, Any] = {"page": name, "size": [pixels.shape[1], pixels.shape[0]]}
        t0 = time.perf_counter()
        if name in ROTATED:
            expected = ROTATED[name]
            row["f1_as_is"] = round(word_f1(engine.recognize(pixels).text, truth), 3)
            dt, o, fixed = orient(pixels)
            row["shipped"] = {
                "expected": expected,
                "detected": o.rotation,
                "confidence": round(o.confidence, 3),
                "f1": round(word_f1(engine.recognize(fixed).text, truth), 3),
                "orient_s": round(dt, 3),
            }
        else:
            # Overhead: orient, OCR, orient again, on the same upright array.
            t_a, o_up, fixed_up = orient(pixels)
            t_ocr, res = timed(engine.recognize, pixels)
            t_b, _, _ = orient(pixels)
            t_orient = statistics.median([t_a, t_b])
            row["ocr_s"] = round(t_ocr, 3)
            row["orient_s"] = round(t_orient, 3)
            row["overhead"] = round(t_orient / t_ocr, 4)
            row["f1_upright"] = round(word_f1(res.text, truth), 3)
            row["upright_detected"] = o_up.rotation
            if fixed_up.shape == pixels.shape and np.array_equal(fixed_up, pixels):
                row["f1_0"] = row["f1_upright"]
            else:
                row["f1_0"] = round(word_f1(engine.recognize(fixed_up).text, truth), 3)
            for k in (1, 2, 3):
                turned = np.ascontiguousarray(np.rot90(pixels, k))  # k x 90 counter-clockwise
                dt, o, fixed = orient(turned)
                row[f"detected_{90 * k}"] = o.rotation
                row[f"conf_{90 * k}"] = round(o.confidence, 3)
                row[f"f1_{90 * k}"] = round(word_f1(engine.recognize(fixed).text, truth), 3)
                row[f"orient_s_{90 * k}"] = round(dt, 3)
            if args.skew:
                angle = args.skew if n % 2 else -args.skew
                im = Image.fromarray(pixels)
                fill = "white" if im.mode == "RGB" else 255
                skewed = np.asarray(
                    im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
                )
                _, o, fixed = orient(skewed)
                row["skew_applied"] = angle
                row["skew_detected"] = o.skew
                row["skew_rotation"] = o.rotation
                # Relative to the skew the upright page already had.
                row["skew_error"] = round(abs(o.skew - o_up.skew - angle), 2)
                row["f1_skew_raw"] = round(word_f1(engine.recognize(skewed).text, truth), 3)
                row["f1_skew_fixed"] = round(word_f1(engine.recognize(fixed).text, truth), 3)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"[{n}/{len(pages)}] {json.dumps(row)}", file=sys.stderr, flush=True)
    engine.close()

    figures = summarize(rows, args)
    print_table(rows, figures)
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "rows": rows}, indent=1))
    return 0


def summarize(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The headline figures: mean F1 per rotation, worst drop, accuracy, overhead, skew."""
    gen = [r for r in rows if "f1_upright" in r]
    fig: dict[str, Any] = {"threads": args.threads, "pages": len(gen)}
    if gen:
        for rot in (0, 90, 180, 270):
            fig[f"mean_f1_{rot}"] = round(statistics.mean(float(r[f"f1_{rot}"]) for r in gen), 3)
        fig["mean_f1_upright_no_orientation"] = round(
            statistics.mean(float(r["f1_upright"]) for r in gen),
            3,
        )
        drops = [
            float(r["f1_upright"]) - float(r[f"f1_{rot}"]) for r in gen for rot in (0, 90, 180, 270)
        ]
        fig["max_f1_drop_vs_upright"] = round(max(drops), 3)
        fig["pages_within_0.05"] = sum(
            all(float(r["f1_upright"]) - float(r[f"f1_{rot}"]) <= 0.05 for rot in (0, 90, 180, 270))
            for r in gen
        )
        hits = sum(r["upright_detected"] == 0 for r in gen)
        hits += sum(r[f"detected_{rot}"] == rot for r in gen for rot in (90, 180, 270))
        total = 4 * len(gen)
        shipped = [r["shipped"] for r in rows if "shipped" in r]
        hits += sum(s["expected"] == s["detected"] for s in shipped)
        total += len(shipped)
        fig["rotation_accuracy"] = f"{hits}/{total}"
        ratios = [float(r["overhead"]) for r in gen]
        fig["overhead_median"] = round(statistics.median(ratios), 4)
        fig["overhead_mean"] = round(statistics.mean(ratios), 4)
        fig["overhead_max"] = round(max(ratios), 4)
        fig["overhead_total"] = round(
            sum(float(r["orient_s"]) for r in gen) / sum(float(r["ocr_s"]) for r in gen),
            4,
        )
        fig["median_orient_s_upright"] = round(
            statistics.median(float(r["orient_s"]) for r in gen),
            3,
        )
        skewed = [r for r in gen if "skew_error" in r]
        if skewed:
            errors = [float(r["skew_error"]) for r in skewed]
            fig["skew_error_mean"] = round(statistics.mean(errors), 3)
            fig["skew_error_max"] = round(max(errors), 3)
            fig["mean_f1_skewed_raw"] = round(
                statistics.mean(float(r["f1_skew_raw"]) for r in skewed),
                3,
            )
            fig["mean_f1_skewed_fixed"] = round(
                statistics.mean(float(r["f1_skew_fixed"]) for r in skewed),
                3,
            )
    return fig


def print_table(rows: list[dict[str, Any]], figures: dict[str, Any]) -> None:
    head = (
        f"{'page':30s} {'size':>9s} {'ocr s':>6s} {'ori s':>6s} {'ovh':>6s} {'F1 up':>6s} "
        f"{'F1 0':>6s} {'F1 90':>6s} {'F1 180':>6s} {'F1 270':>6s} {'det 90/180/270':>15s} "
        f"{'skew':>5s} {'err':>5s} {'F1 sk':>6s} {'F1 fix':>6s}"
    )
    print(head)
    for r in rows:
        size = "x".join(map(str, r["size"]))
        if "shipped" in r:
            s = r["shipped"]
            print(
                f"{r['page']:30s} {size:>9s} {'':>6s} {s['orient_s']:6.2f} {'':>6s} "
                f"{'':>6s} {'':>6s} as-is F1 {r['f1_as_is']:.3f} -> detected "
                f"{s['detected']} (expected {s['expected']}), F1 {s['f1']:.3f}"
            )
            continue
        det = f"{r['detected_90']}/{r['detected_180']}/{r['detected_270']}"
        skew = ""
        if "skew_error" in r:
            skew = (
                f"{r['skew_applied']:+5.1f} {r['skew_error']:5.2f} {r['f1_skew_raw']:6.3f} "
                f"{r['f1_skew_fixed']:6.3f}"
            )
        print(
            f"{r['page']:30s} {size:>9s} {r['ocr_s']:6.2f} {r['orient_s']:6.2f} "
            f"{r['overhead']:6.3f} {r['f1_upright']:6.3f} {r['f1_0']:6.3f} {r['f1_90']:6.3f} "
            f"{r['f1_180']:6.3f} {r['f1_270']:6.3f} {det:>15s} {skew}"
        )
    print()
    for k, v in figures.items():
        print(f"{k:32s} {v}")


if __name__ == "__main__":
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    raise SystemExit(main())
