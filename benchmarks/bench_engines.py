"""Engine benchmark: both OCR engines on the same dev pages, accuracy against time per page.

    python benchmarks/bench_engines.py [--engines paddle onnx] [--pages N | STEM ...]
                                       [--threads 1] [--rotated] [--out benchmarks/engines]

Each engine runs in its own child process (this script re-invoked with ``--child ENGINE``),
one after the other, so its import and init time and its peak RSS are its own. In the child:

* import time (``rythmiq`` and the engine's library) and init time of the engine
  (``PaddleEngine(EngineConfig(threads=t))`` / ``OnnxEngine(EngineConfig(engine="onnx",
  threads=t))``, the engines' defaults otherwise), imports included;
* one warm-up page (the first), not counted;
* per page, four calls, their order rotated from page to page so load from other processes
  hits them alike: the RAW library call held by the engine (``PaddleOCR.predict`` /
  ``RapidOCR.__call__``) on the BGR array the engine would build, the floor; the engine
  wrapper ``engine.recognize`` on the RGB array; ``rythmiq.process(path, engine=engine)`` with
  ``rotate=False`` (the pipeline without orientation detection); and the same with the
  default ``rotate=True``, a separate column;
* word-F1 and CER (:mod:`rythmiq.metrics`) of the ``process()`` text and of the raw text
  (its lines joined by newlines, in the library's order) against the ground truth;
* peak RSS (``ru_maxrss``) at the end.

The arrays given to the raw call and the wrapper are the decoded pages fitted into the default
``ProcessOptions.box``, as ``process()`` fits them, so all calls read the same pixels (each
row records whether ``process()`` OCR'd that size). The two rotated copies of a dev page
(``*_rot*``) are left out unless ``--rotated``: orientation is another benchmark's subject.

Prints a summary table and a per-page table, and writes ``results.json`` and
``accuracy_vs_time.png`` (word-F1 against ``process()`` seconds per page) into ``--out``.

The engine-settings study that chose the engines' defaults is ``bench_engine_settings.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _dev import DEV, dev_pages

HERE = Path(__file__).resolve().parent
ENGINES = ("paddle", "onnx")
CALLS = ("raw", "wrapper", "process", "process_rotate")
PACKAGES = {
    "paddle": ("paddleocr", "paddlex", "paddlepaddle"),
    "onnx": ("rapidocr", "openvino", "onnxruntime"),
}


def _mb(kib: float) -> float:
    return round(kib / 1024, 1)


def _p95(values: list[float]) -> float:
    """95th percentile, linear between the closest ranks (the value itself for one page)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def select_pages(spec: list[str] | None, *, rotated: bool) -> list[tuple[Path, str]]:
    """The dev pages to run: all, the first N (``["3"]``), or the named stems.

    Rotated copies are dropped unless ``rotated`` or named explicitly.
    """
    pages = dev_pages()
    if spec and not (len(spec) == 1 and spec[0].isdigit()):
        known = {p.stem for p, _ in pages}
        unknown = [s for s in spec if s not in known]
        if unknown:
            raise SystemExit(f"unknown dev pages {unknown}; known: {sorted(known)}")
        return [(p, t) for p, t in pages if p.stem in spec]
    if not rotated:
        pages = [(p, t) for p, t in pages if "_rot" not in p.stem]
    if spec:
        pages = pages[: int(spec[0])]
    return pages


# --------------------------------------------------------------------------- child


def _versions(kind: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("rythmiq", *PACKAGES[kind]):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _import_library(kind: str, config: Any) -> None:
    """Import the engine's library as the engine's constructor would."""
    if kind == "paddle":
        from rythmiq.ocr import resolve_model

        resolved = config.resolved()
        det = resolve_model(resolved.det_model, resolved.det_model_dir, engine="paddle")
        rec = resolve_model(resolved.rec_model, resolved.rec_model_dir, engine="paddle")
        if det.path is not None and rec.path is not None:
            # As PaddleEngine does before its import: paddlex reads it at import time.
            os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import paddleocr  # noqa: F401
    else:
        import importlib

        importlib.import_module(config.resolved().runtime)
        import rapidocr  # noqa: F401


def _raw_input(kind: str, pixels: Any) -> Any:
    """The array the engine hands its library: BGR, or (RapidOCR) grayscale as it is."""
    import cv2
    import numpy as np

    if pixels.ndim == 2:
        if kind == "onnx":
            return np.ascontiguousarray(pixels)
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def _raw_call(kind: str, engine: Any) -> Callable[[Any], str]:
    """The library object the engine wraps, called as the engine calls it; returns its text."""
    lib = engine._ocr
    if kind == "paddle":

        def paddle(bgr: Any) -> str:
            return "\n".join(t for page in lib.predict(bgr) for t in page["rec_texts"])

        return paddle

    def onnx(bgr: Any) -> str:
        return "\n".join(getattr(lib(bgr), "txts", None) or ())

    return onnx


def child(kind: str, stems: list[str], threads: int) -> dict[str, Any]:
    """Measure one engine in this process; returns the JSON-safe figures."""
    from dataclasses import asdict

    t0 = time.perf_counter()
    import rythmiq
    from rythmiq.ocr import EngineConfig

    t1 = time.perf_counter()
    fields = getattr(EngineConfig, "__dataclass_fields__", {})
    if kind == "onnx" and "engine" not in fields:
        return {"engine": kind, "skipped": "this rythmiq has no EngineConfig(engine=...)"}
    config = EngineConfig(engine=kind, threads=threads) if "engine" in fields else None
    config = config or EngineConfig(threads=threads)
    try:
        _import_library(kind, config)
    except ImportError as exc:
        return {"engine": kind, "skipped": f"library not installed: {exc}"}
    t2 = time.perf_counter()
    try:
        if kind == "paddle":
            from rythmiq.ocr import PaddleEngine as Engine
        else:
            from rythmiq.ocr import OnnxEngine as Engine
        engine = Engine(config)
    except (ImportError, rythmiq.RythmiqError) as exc:
        return {"engine": kind, "skipped": f"{type(exc).__name__}: {exc}"}
    t3 = time.perf_counter()
    rss_init = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    from rythmiq import ProcessOptions, load_image, process
    from rythmiq.metrics import cer, word_f1
    from rythmiq.normalize import fit_size, resize_exact

    plain = ProcessOptions(engine=kind, threads=threads, rotate=False)
    rotating = ProcessOptions(engine=kind, threads=threads)
    pages = []
    for path, truth in dev_pages(stems):
        pixels = load_image(str(path)).pixels
        h, w = pixels.shape[:2]
        size = fit_size(w, h, plain.box, upscale=plain.upscale) if plain.box else (w, h)
        pages.append((path, truth, (w, h), resize_exact(pixels, size)))
    raw = _raw_call(kind, engine)

    t = time.perf_counter()
    engine.recognize(pages[0][3])
    process(str(pages[0][0]), options=rotating, engine=engine)
    warmup_s = time.perf_counter() - t

    rows = []
    for i, (path, truth, size, pixels) in enumerate(pages):
        bgr = _raw_input(kind, pixels)
        out: dict[str, Any] = {}

        def timed(
            call: str,
            path: Path = path,
            pixels: Any = pixels,
            bgr: Any = bgr,
            out: dict[str, Any] = out,
        ) -> None:
            t = time.perf_counter()
            if call == "raw":
                res: Any = raw(bgr)
            elif call == "wrapper":
                res = engine.recognize(pixels)
            else:
                opts = rotating if call == "process_rotate" else plain
                res = process(str(path), options=opts, engine=engine)
            out[call] = (time.perf_counter() - t, res)

        order = CALLS[i % len(CALLS) :] + CALLS[: i % len(CALLS)]
        for call in order:
            timed(call)
        proc = out["process"][1]
        rot = out["process_rotate"][1]
        rows.append(
            {
                "page": path.stem,
                "size": list(size),
                "ocr_size": [int(pixels.shape[1]), int(pixels.shape[0])],
                "process_ocr_size": [proc.ocr.width, proc.ocr.height] if proc.ocr else None,
                "order": list(order),
                "s": {call: round(out[call][0], 4) for call in CALLS},
                "process_stages_s": {
                    k: round(v["wall_s"], 4) for k, v in proc.timings.to_dict().items()
                },
                "process_rotate_stages_s": {
                    k: round(v["wall_s"], 4) for k, v in rot.timings.to_dict().items()
                },
                "process_rotate_turned": [
                    c for c in rot.image.corrections if c.startswith(("rotated_", "deskewed"))
                ],
                "texts": {
                    "raw": out["raw"][1],
                    "wrapper": out["wrapper"][1].text,
                    "process": proc.text or "",
                    "process_rotate": rot.text or "",
                },
                "truth": truth,
                "lines": {"wrapper": len(out["wrapper"][1].lines)},
            }
        )
        s = rows[-1]["s"]
        print(
            f"  {kind} {path.stem}: raw {s['raw']:.2f} s, wrapper {s['wrapper']:.2f} s, "
            f"process {s['process']:.2f} s, rotate=True {s['process_rotate']:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    name, effective = engine.name, asdict(engine.config)
    models = {"det": asdict(engine.det), "rec": asdict(engine.rec)}
    engine.close()

    # CER is quadratic in pure Python (~10 s for a 4,500-character page), so it is computed
    # once per distinct text; it collapses whitespace, so raw lines joined by newlines and
    # the same lines joined into rows by spaces are one text.
    cers: dict[str, float] = {}
    for row in rows:
        texts, truth = row.pop("texts"), row.pop("truth")
        row["f1"] = {k: round(word_f1(v, truth), 4) for k, v in texts.items()}
        row["cer"] = {}
        for k, v in texts.items():
            key = " ".join(v.split())
            if key not in cers:
                cers[key] = cer(v, truth)
            row["cer"][k] = round(cers[key], 4)
        cers.clear()
        row["wrapper_equals_process"] = texts["wrapper"] == texts["process"]
        row["raw_words_equal_process"] = sorted(texts["raw"].split()) == sorted(
            texts["process"].split()
        )
        row["texts"] = texts
    return {
        "engine": kind,
        "name": name,
        "config": effective,
        "models": models,
        "versions": _versions(kind),
        "threads": threads,
        "import_rythmiq_s": round(t1 - t0, 3),
        "import_library_s": round(t2 - t1, 3),
        "engine_load_s": round(t3 - t2, 3),
        "init_s": round(t3 - t0, 3),
        "warmup_s": round(warmup_s, 3),
        "rss_after_init_mb": _mb(rss_init),
        "peak_rss_mb": _mb(peak),
        "rows": rows,
    }


# --------------------------------------------------------------------------- parent


def run_child(kind: str, stems: list[str], threads: int) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter; its progress goes to our stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "child.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind]
        cmd += ["--child-json", str(dest), "--threads", str(threads), "--pages", *stems]
        load = os.getloadavg()[0]
        t = time.perf_counter()
        proc = subprocess.run(cmd, stdout=sys.stderr, check=False)
        wall = time.perf_counter() - t
        if proc.returncode != 0 or not dest.is_file():
            return {"engine": kind, "skipped": f"child exited with {proc.returncode}"}
        out: dict[str, Any] = json.loads(dest.read_text())
    out["child_wall_s"] = round(wall, 2)
    out["load_average_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    return out


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    rows = res["rows"]

    def col(call: str) -> list[float]:
        return [r["s"][call] for r in rows]

    ratios = [r["s"]["process"] / r["s"]["raw"] for r in rows]
    return {
        "pages": len(rows),
        "mean_f1": round(statistics.fmean(r["f1"]["process"] for r in rows), 4),
        "mean_cer": round(statistics.fmean(r["cer"]["process"] for r in rows), 4),
        "mean_f1_raw": round(statistics.fmean(r["f1"]["raw"] for r in rows), 4),
        "mean_cer_raw": round(statistics.fmean(r["cer"]["raw"] for r in rows), 4),
        "mean_f1_process_rotate": round(
            statistics.fmean(r["f1"]["process_rotate"] for r in rows), 4
        ),
        **{f"median_{c}_s": round(statistics.median(col(c)), 4) for c in CALLS},
        **{f"p95_{c}_s": round(_p95(col(c)), 4) for c in CALLS},
        **{f"total_{c}_s": round(sum(col(c)), 3) for c in CALLS},
        "process_over_raw_median": round(statistics.median(ratios), 3),
        "process_over_raw_total": round(sum(col("process")) / sum(col("raw")), 3),
        "wrapper_over_raw_total": round(sum(col("wrapper")) / sum(col("raw")), 3),
        "process_rotate_over_process_total": round(
            sum(col("process_rotate")) / sum(col("process")), 3
        ),
        "pages_wrapper_text_differs": [r["page"] for r in rows if not r["wrapper_equals_process"]],
        "pages_ocr_size_differs": [
            r["page"] for r in rows if r["process_ocr_size"] != r["ocr_size"]
        ],
    }


def print_tables(results: dict[str, dict[str, Any]], threads: int) -> None:
    done = {k: v for k, v in results.items() if "summary" in v}
    for kind, res in results.items():
        if "skipped" in res:
            print(f"{kind}: skipped ({res['skipped']})")
            continue
        cfg = ", ".join(f"{k}={v!r}" for k, v in res["config"].items())
        print(f"{kind}: {res['name']}\n  EngineConfig({cfg})")
        v = res["versions"]
        print("  " + ", ".join(f"{k} {ver}" for k, ver in v.items()))
    if not done:
        return
    pages = next(iter(done.values()))["summary"]["pages"]
    print(f"\n{pages} pages, {threads} thread{'s' if threads != 1 else ''}; s = seconds per page")
    head = (
        f"{'engine':<7} {'pages':>5} {'F1':>6} {'CER':>6} {'F1 raw':>6} {'med s':>6} "
        f"{'p95 s':>6} {'raw s':>6} {'p/raw':>6} {'p/raw':>6} {'rot s':>6} {'init s':>6} "
        f"{'import':>6} {'RSS MB':>7}"
    )
    print(head)
    print(
        f"{'':<7} {'':>5} {'proc.':>6} {'proc.':>6} {'':>6} {'proc.':>6} {'proc.':>6} "
        f"{'median':>6} {'median':>6} {'sums':>6} {'median':>6} {'':>6} {'s':>6} {'peak':>7}"
    )
    for kind, res in done.items():
        s = res["summary"]
        print(
            f"{kind:<7} {s['pages']:>5} {s['mean_f1']:>6.3f} {s['mean_cer']:>6.3f} "
            f"{s['mean_f1_raw']:>6.3f} {s['median_process_s']:>6.2f} {s['p95_process_s']:>6.2f} "
            f"{s['median_raw_s']:>6.2f} {s['process_over_raw_median']:>6.3f} "
            f"{s['process_over_raw_total']:>6.3f} {s['median_process_rotate_s']:>6.2f} "
            f"{res['init_s']:>6.2f} {res['import_rythmiq_s'] + res['import_library_s']:>6.2f} "
            f"{res['peak_rss_mb']:>7.0f}"
        )
    print(
        "proc. = process(rotate=False); p/raw = process / raw library call (median of the "
        "per-page ratios, and ratio of the sums); rot s = process() with rotate=True; init "
        "includes the imports"
    )
    for kind, res in done.items():
        s = res["summary"]
        print(
            f"{kind}: wrapper/raw {s['wrapper_over_raw_total']:.3f}, rotate=True/rotate=False "
            f"{s['process_rotate_over_process_total']:.3f} (sums); import rythmiq "
            f"{res['import_rythmiq_s']:.2f} s + library {res['import_library_s']:.2f} s + "
            f"engine {res['engine_load_s']:.2f} s; RSS after init {res['rss_after_init_mb']:.0f} MB"
        )
        notes = []
        if s["pages_wrapper_text_differs"]:
            notes.append(f"wrapper text != process text on {s['pages_wrapper_text_differs']}")
        if s["pages_ocr_size_differs"]:
            notes.append(f"process() OCR'd another size on {s['pages_ocr_size_differs']}")
        if notes:
            print(f"note ({kind}): " + "; ".join(notes))

    kinds = list(done)
    per = {k: {r["page"]: r for r in done[k]["rows"]} for k in kinds}
    first = done[kinds[0]]["rows"]
    print()
    print(
        f"{'page':<28} {'size':>9} "
        + " ".join(f"{'F1 ' + k:>11}" for k in kinds)
        + " "
        + " ".join(f"{'s ' + k:>9}" for k in kinds)
        + " "
        + " ".join(f"{'raw s ' + k:>12}" for k in kinds)
    )
    for row in first:
        name = row["page"]
        size = "x".join(map(str, row["size"])) + ("*" if row["size"] != row["ocr_size"] else "")
        f1 = " ".join(f"{per[k][name]['f1']['process']:>11.3f}" for k in kinds)
        sec = " ".join(f"{per[k][name]['s']['process']:>9.2f}" for k in kinds)
        raw = " ".join(f"{per[k][name]['s']['raw']:>12.2f}" for k in kinds)
        print(f"{name:<28} {size:>9} {f1} {sec} {raw}")
    if any(r["size"] != r["ocr_size"] for r in first):
        print("* fitted into ProcessOptions().box before OCR, as process() does")


def plot(results: dict[str, dict[str, Any]], threads: int, dest: Path) -> None:
    """Word-F1 against process() seconds per page: a point per page, a big one per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    styles = {"paddle": ("tab:blue", "o"), "onnx": ("tab:orange", "s")}
    done = [res for res in results.values() if "summary" in res]
    if len(done) == 2:  # a thin line joins each page's two points
        other = {r["page"]: r for r in done[1]["rows"]}
        for r in done[0]["rows"]:
            o = other[r["page"]]
            ax.plot(
                [r["s"]["process"], o["s"]["process"]],
                [r["f1"]["process"], o["f1"]["process"]],
                color="0.8",
                linewidth=0.8,
                zorder=1,
            )
    pages = 0
    low = 1.0
    for kind, res in results.items():
        if "summary" not in res:
            continue
        color, marker = styles.get(kind, ("tab:gray", "^"))
        rows, s = res["rows"], res["summary"]
        pages = max(pages, len(rows))
        low = min([low, *(r["f1"]["process"] for r in rows)])
        ax.scatter(
            [r["s"]["process"] for r in rows],
            [r["f1"]["process"] for r in rows],
            color=color,
            marker=marker,
            alpha=0.6,
            s=30,
            zorder=2,
            label=f"{kind}: pages",
        )
        ax.scatter(
            [s["median_process_s"]],
            [s["mean_f1"]],
            color=color,
            marker=marker,
            s=220,
            edgecolors="black",
            linewidths=1.2,
            zorder=3,
            label=f"{kind}: median s {s['median_process_s']:.2f}, mean F1 {s['mean_f1']:.3f}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("seconds per page, rythmiq.process(rotate=False) (log scale)")
    ax.set_ylabel("word F1 against the ground truth")
    ax.set_ylim(max(0.0, math.floor(10 * low - 0.5) / 10), 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(
        f"OCR engines on {pages} dev page{'s' if pages != 1 else ''}, "
        f"{threads} thread{'s' if threads != 1 else ''}"
    )
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)


def compare(args: argparse.Namespace) -> int:
    if not (DEV / "ocr" / "manifest.jsonl").is_file():
        print(
            f"no dev OCR pages at {DEV / 'ocr'} (manifest.jsonl); set RYTHMIQ_DEV_DATA to the "
            "folder holding ocr/",
            file=sys.stderr,
        )
        return 2
    pages = select_pages(args.pages, rotated=args.rotated)
    if not pages:
        print("no pages selected", file=sys.stderr)
        return 2
    stems = [p.stem for p, _ in pages]
    print(
        f"{len(stems)} pages, threads={args.threads}, engines {' '.join(args.engines)}",
        file=sys.stderr,
    )
    results: dict[str, dict[str, Any]] = {}
    for kind in args.engines:
        res = run_child(kind, stems, args.threads)
        if "skipped" in res:
            print(f"{kind}: skipped: {res['skipped']}", file=sys.stderr)
        else:
            res["summary"] = summarize(res)
        results[kind] = res

    print_tables(results, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    dest = args.json or args.out / "results.json"
    report = {
        "threads": args.threads,
        "pages": stems,
        "rotated_included": any("_rot" in s for s in stems),
        "cpu_count": os.cpu_count(),
        "engines": results,
    }
    dest.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"\nwrote {dest}")
    if any("summary" in r for r in results.values()):
        png = args.out / "accuracy_vs_time.png"
        plot(results, args.threads, png)
        print(f"wrote {png}")
        return 0
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument(
        "--pages", nargs="*", help="the first N dev pages (--pages 3), or page stems (default: all)"
    )
    ap.add_argument("--threads", type=int, default=1, help="OCR threads per engine (default 1)")
    ap.add_argument("--rotated", action="store_true", help="include the *_rot* rotated copies")
    ap.add_argument(
        "--out", type=Path, default=HERE / "engines", help="folder for results.json and the PNG"
    )
    ap.add_argument("--json", type=Path, help="write the JSON here instead of OUT/results.json")
    ap.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--child-json", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child(args.child, args.pages or [], args.threads)
        args.child_json.write_text(json.dumps(res, ensure_ascii=False))
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
