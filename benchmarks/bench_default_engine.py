"""The default engine against raw RapidOCR: accuracy, total time, engine start-up.

    python benchmarks/bench_default_engine.py [--variants default ort ...] [--pages N | STEM ...]
                                              [--no-startup] [--json out.json]

In one process, one thread everywhere, all dev OCR pages (rotated copies included), page by
page in turn; on each page the variants run in an order rotated from page to page, so load
from other processes hits them alike. Variants:

* ``raw-ort``: the reference. Raw RapidOCR 3.10 at its own defaults with ONNX Runtime
  (``Global.use_cls=False``, one intra-op and one inter-op thread), called on the decoded
  BGR array (decoding is not counted for it; it is for every ``process()`` variant);
* ``raw-ov``: the same on OpenVINO (``inference_num_threads=1``);
* ``default``: ``rythmiq.process(path, options=ProcessOptions(threads=1))``, the whole
  pipeline (decode, quality, orientation, normalization, OCR) with the default engine;
* ``ort``: the same with ``runtime="onnxruntime"`` (the ONNX engine before OpenVINO);
* ``paddle``: the same with ``engine="paddle"`` (needs ``rythmiq[paddle]``; slow);
* ``paddle-v6``: ``engine="paddle"`` with the PP-OCRv6 small models, which PaddleOCR runs on
  its ONNX Runtime engine from the rapidocr wheel's files (``rythmiq.ocr._paddle_onnx``);
* ``v-*``: settings variants of the default engine (see :data:`VARIANTS`), each an
  ``EngineConfig``/``ProcessOptions`` change or a patched engine, measured the same way.

Every variant is warmed up on the first page before timing. Word-F1 is
:func:`rythmiq.metrics.word_f1` of the text against the manifest's ground truth (for raw
calls: the lines joined by newlines, in the library's order).

``--startup`` (on by default) also times "engine ready" in fresh child processes, three
times each: ``import rythmiq`` plus ``create_engine(EngineConfig(threads=1, runtime=R))``,
and the time to the first OCR result of a small rendered page after that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One thread for every library, before any of them is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from _dev import dev_pages  # noqa: E402

HERE = Path(__file__).resolve().parent


def _raw(runtime: str) -> Callable[[Any], str]:
    from rapidocr import EngineType, RapidOCR

    from rythmiq._liblog import adopt_library_loggers

    params: dict[str, Any] = {"Global.use_cls": False, "Global.log_level": "critical"}
    if runtime == "onnxruntime":
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = 1
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    else:
        params["Det.engine_type"] = EngineType.OPENVINO
        params["Rec.engine_type"] = EngineType.OPENVINO
        params["EngineConfig.openvino.inference_num_threads"] = 1
    ocr = RapidOCR(params=params)
    adopt_library_loggers()

    def call(bgr: Any) -> str:
        return "\n".join(getattr(ocr(bgr), "txts", None) or ())

    return call


def _process(**options: Any) -> Callable[[Path], str]:
    import rythmiq
    from rythmiq.ocr import create_engine

    opts = rythmiq.ProcessOptions(threads=1, **options)
    engine = create_engine(opts.engine_config())

    def call(path: Path) -> str:
        return rythmiq.process(path, options=opts, engine=engine).text

    return call


#: Settings variants of the default engine: name -> (description, ProcessOptions kwargs).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "v-det736": ("detection at 736 px", {}),
    "v-det1280": ("detection at 1280 px", {}),
    "v-norotate": ("no orientation detection (rotate=False)", {"rotate": False}),
    "v-nocrop": ("detection on the whole image, not its content box", {}),
    "v-width1": ("recognition widths as RapidOCR pads them, not to 32 px", {}),
    "v-composite": ("orientation reads a composite with recognize(), not read_lines()", {}),
    "v-batch6": ("recognition batches of 6 lines", {}),
    "v-f32": ("OpenVINO forced to float32 (INFERENCE_PRECISION_HINT=f32)", {}),
}


def _variant(name: str) -> Callable[[Path], str]:
    import rythmiq
    from rythmiq.ocr import EngineConfig, OnnxEngine

    if name in ("v-det736", "v-det1280"):
        side = int(name.removeprefix("v-det"))
        opts = rythmiq.ProcessOptions(threads=1)
        config = EngineConfig(threads=1, det_limit_side_len=side)
        engine = OnnxEngine(config)
    elif name == "v-nocrop":

        class WholeImage(OnnxEngine):
            _crop_to_content = False

        opts = rythmiq.ProcessOptions(threads=1)
        engine = WholeImage(opts.engine_config())
    elif name == "v-width1":
        opts = rythmiq.ProcessOptions(threads=1)
        engine = OnnxEngine(opts.engine_config())
        del engine._ocr.text_rec.resize_norm_img  # back to RapidOCR's own method
    elif name == "v-composite":

        class Composite(OnnxEngine):
            read_lines = None  # orientation then stacks its crops for recognize()

        opts = rythmiq.ProcessOptions(threads=1)
        engine = Composite(opts.engine_config())
    elif name == "v-batch6":
        opts = rythmiq.ProcessOptions(threads=1)
        engine = OnnxEngine(EngineConfig(threads=1, rec_batch_size=6))
    elif name == "v-f32":
        import openvino as ov

        opts = rythmiq.ProcessOptions(threads=1, runtime="openvino")
        engine = OnnxEngine(opts.engine_config())
        core = ov.Core()
        settings = {
            "INFERENCE_NUM_THREADS": "1",
            "NUM_STREAMS": "1",
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": "NO",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        for part in (engine._ocr.text_det, engine._ocr.text_rec):
            session = part.session
            compiled = core.compile_model(session.model, "CPU", settings)
            session.session = compiled.create_infer_request()
    else:
        opts = rythmiq.ProcessOptions(threads=1, **VARIANTS[name][1])
        engine = OnnxEngine(opts.engine_config())

    def call(path: Path) -> str:
        return rythmiq.process(path, options=opts, engine=engine).text

    return call


def build(name: str) -> tuple[str, Callable[[Any], str]]:
    """``(input kind, callable)``: kind ``"bgr"`` takes the decoded array, ``"path"`` a path."""
    if name == "raw-ort":
        return "bgr", _raw("onnxruntime")
    if name == "raw-ov":
        return "bgr", _raw("openvino")
    if name == "default":
        return "path", _process()
    if name == "ort":
        return "path", _process(runtime="onnxruntime")
    if name == "paddle":
        return "path", _process(engine="paddle")
    if name == "paddle-v6":
        return "path", _process(
            engine="paddle", det_model="PP-OCRv6_small_det", rec_model="PP-OCRv6_small_rec"
        )
    if name in VARIANTS:
        return "path", _variant(name)
    raise SystemExit(f"unknown variant {name!r}")


def measure(variants: list[str], pages: list[tuple[Path, str]]) -> dict[str, Any]:
    import cv2

    from rythmiq.metrics import word_f1

    built = {v: build(v) for v in variants}
    first = pages[0][0]
    for kind, fn in built.values():  # warm-up, not counted
        fn(cv2.imread(str(first)) if kind == "bgr" else first)
    rows: list[dict[str, Any]] = []
    for i, (path, truth) in enumerate(pages):
        bgr = cv2.imread(str(path))
        order = variants[i % len(variants) :] + variants[: i % len(variants)]
        row: dict[str, Any] = {"page": path.stem}
        for v in order:
            kind, fn = built[v]
            t0 = time.perf_counter()
            text = fn(bgr if kind == "bgr" else path)
            row[v] = {"s": time.perf_counter() - t0, "f1": word_f1(text, truth)}
        rows.append(row)
        print(
            f"  {path.stem:<28}"
            + "".join(f" {v}={row[v]['f1']:.3f}/{row[v]['s']:.2f}s" for v in variants),
            flush=True,
        )
    return {"variants": variants, "rows": rows}


def summarize(res: dict[str, Any], reference: str = "raw-ort") -> None:
    rows, variants = res["rows"], res["variants"]
    ref_total = sum(r[reference]["s"] for r in rows) if reference in variants else None
    print(f"\n{len(rows)} pages, one thread, page by page in turn")
    print(f"{'variant':<12} {'word-F1':>8} {'median s':>9} {'total s':>8} {'/ ' + reference:>10}")
    for v in variants:
        f1 = statistics.fmean(r[v]["f1"] for r in rows)
        times = [r[v]["s"] for r in rows]
        total = sum(times)
        ratio = f"{total / ref_total:.2f}" if ref_total else "-"
        print(f"{v:<12} {f1:>8.3f} {statistics.median(times):>9.2f} {total:>8.1f} {ratio:>10}")
    if "default" in variants and "ort" in variants:
        worst = min(rows, key=lambda r: r["default"]["f1"] - r["ort"]["f1"])
        drop = worst["ort"]["f1"] - worst["default"]["f1"]
        print(f"largest drop default vs ort: {drop:+.3f} on {worst['page']}")


_STARTUP = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import rythmiq
from rythmiq.ocr import EngineConfig, create_engine
t1 = time.perf_counter()
engine = create_engine(EngineConfig(threads=1, runtime=sys.argv[1]))
t2 = time.perf_counter()
page = np.full((200, 600, 3), 255, np.uint8)
import cv2
cv2.putText(page, "Hello 2026", (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 4)
text = engine.recognize(page).text
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "ready_s": t2 - t0, "first_s": t3 - t2, "text": text}))
"""


def startup(runtimes: tuple[str, ...] = ("openvino", "onnxruntime"), repeats: int = 3) -> None:
    print("\nengine ready (fresh process: import rythmiq + create_engine), s; median of", repeats)
    for runtime in runtimes:
        runs = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-c", _STARTUP, runtime],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "RYTHMIQ_THREADS": "1"},
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        med = {k: statistics.median(r[k] for r in runs) for k in ("import_s", "ready_s", "first_s")}
        print(
            f"  {runtime:<12} import {med['import_s']:.2f}  ready {med['ready_s']:.2f}  "
            f"first result +{med['first_s']:.2f}  (read {runs[0]['text']!r})"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["raw-ort", "raw-ov", "ort", "default"])
    ap.add_argument("pages", nargs="*", help="N (the first N pages) or page stems")
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    pages = dev_pages()
    if not pages:
        print("no dev data (../shared/data/dev); nothing to measure")
        return 0
    if args.pages and args.pages[0].isdigit():
        pages = pages[: int(args.pages[0])]
    elif args.pages:
        pages = [p for p in pages if p[0].stem in args.pages]
    res = measure(args.variants, pages)
    summarize(res)
    if not args.no_startup:
        startup()
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
