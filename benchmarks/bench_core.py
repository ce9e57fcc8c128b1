"""Core benchmark: import time, engine init, per-stage times, word-F1, process()/raw ratio, MP/s.

    python benchmarks/bench_core.py [--pages sroie_070 ...] [--threads 1] [--json out.json]

Uses the dev pages in ../shared/data/dev/ocr when present, else pages rendered with Pillow.
Every ratio is measured side by side in one run: for each page, raw ``PaddleOCR.predict`` and
``rythmiq.process`` run back to back on the same array, alternating which goes first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _dev import dev_pages


def import_time(runs: int = 7) -> float:
    """Median seconds for `import rythmiq` in a fresh interpreter."""
    code = "import time; t=time.perf_counter(); import rythmiq; print(time.perf_counter()-t)"
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(times)


def rendered_pages() -> list[tuple[str, object, str]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import PAGE_LINES, render_page

    text = "\n".join(PAGE_LINES)
    return [(f"rendered_{i}", render_page(font_size=s), text) for i, s in enumerate((32, 40, 48))]


def quality_throughput(seconds: float = 3.0) -> dict[str, float]:
    """Megapixels per second of score_quality on one core, on a 12 MP RGB page."""
    import cv2
    import numpy as np

    from rythmiq.quality import score_quality

    cv2.setNumThreads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import render_page

    page = render_page(width=3000, height=4000, font_size=70, margin=200)
    noise = np.random.default_rng(0).normal(0, 4, page.shape)
    page = np.clip(page + noise, 0, 255).astype(np.uint8)
    score_quality(page)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        score_quality(page)
        n += 1
    dt = (time.perf_counter() - t0) / n
    mp = page.shape[0] * page.shape[1] / 1e6
    cv2.setNumThreads(0)
    return {"megapixels": mp, "seconds_per_image": dt, "mp_per_s": mp / dt}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", nargs="*", help="dev page stems (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    figures: dict[str, object] = {"threads": args.threads}
    figures["import_rythmiq_s"] = import_time()

    import cv2

    from rythmiq import ProcessOptions, load_image, process
    from rythmiq.metrics import word_f1
    from rythmiq.ocr import EngineConfig, PaddleEngine

    t0 = time.perf_counter()
    engine = PaddleEngine(EngineConfig(engine="paddle", threads=args.threads))
    figures["engine_init_s"] = time.perf_counter() - t0

    pages = [(p.stem, load_image(str(p)).pixels, t) for p, t in dev_pages(args.pages)]
    figures["pages_source"] = "dev" if pages else "rendered"
    if not pages:
        pages = rendered_pages()  # type: ignore[assignment]

    # OCR the same pixels in both paths: no box, so process() does not shrink large pages.
    same = ProcessOptions(box=None)
    warm = pages[0][1]
    engine.recognize(warm)  # first predict pays oneDNN kernel set-up
    rows = []
    for i, (name, pixels, truth) in enumerate(pages):
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR if pixels.ndim == 3 else cv2.COLOR_GRAY2BGR)

        def raw(bgr: object = bgr) -> tuple[float, str]:
            t = time.perf_counter()
            out = engine._ocr.predict(bgr)[0]
            return time.perf_counter() - t, "\n".join(out["rec_texts"])

        def ours(pixels: object = pixels) -> tuple[float, object]:
            t = time.perf_counter()
            res = process(pixels, options=same, engine=engine)
            return time.perf_counter() - t, res

        if i % 2:
            (t_ours, res), (t_raw, raw_text) = ours(), raw()
        else:
            (t_raw, raw_text), (t_ours, res) = raw(), ours()
        tm = res.timings  # type: ignore[attr-defined]
        row = {
            "page": name,
            "size": [int(pixels.shape[1]), int(pixels.shape[0])],
            "raw_predict_s": round(t_raw, 3),
            "process_s": round(t_ours, 3),
            "ratio": round(t_ours / t_raw, 3),
            "stages_s": {k: v["wall_s"] for k, v in tm.to_dict().items()},
            "f1_process": round(word_f1(res.ocr.text, truth), 3),  # type: ignore[attr-defined]
            "f1_raw": round(word_f1(raw_text, truth), 3),
            "quality": round(res.quality.score, 3),  # type: ignore[attr-defined]
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    engine.close()

    total_raw = sum(r["raw_predict_s"] for r in rows)
    total_ours = sum(r["process_s"] for r in rows)
    figures["pages"] = len(rows)
    figures["process_over_raw_total"] = round(total_ours / total_raw, 3)
    figures["process_over_raw_median"] = round(statistics.median(r["ratio"] for r in rows), 3)
    figures["median_process_s_per_page"] = round(statistics.median(r["process_s"] for r in rows), 3)
    figures["mean_f1_process"] = round(statistics.mean(r["f1_process"] for r in rows), 3)
    figures["mean_f1_raw"] = round(statistics.mean(r["f1_raw"] for r in rows), 3)
    for stage in ("load", "quality", "normalize", "ocr"):
        figures[f"median_{stage}_s"] = round(
            statistics.median(r["stages_s"][stage] for r in rows), 4
        )
    figures["quality_throughput"] = quality_throughput()
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["rows"] = rows

    print(
        f"{'page':28s} {'size':>10s} {'raw s':>7s} {'ours s':>7s} {'ratio':>6s} "
        f"{'F1 ours':>7s} {'F1 raw':>7s}"
    )
    for r in rows:
        size = "x".join(map(str, r["size"]))
        print(
            f"{r['page']:28s} {size:>10s} {r['raw_predict_s']:7.2f} {r['process_s']:7.2f} "
            f"{r['ratio']:6.3f} {r['f1_process']:7.3f} {r['f1_raw']:7.3f}"
        )
    print()
    for k, v in figures.items():
        if k != "rows":
            print(f"{k:28s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    raise SystemExit(main())
