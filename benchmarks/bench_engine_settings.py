"""Engine-settings study: word-F1 and s/page of engine settings, side by side, in one process.

    python benchmarks/bench_engine_settings.py [VARIANT ...] [--threads 1]
                                               [--pages sroie_070 ...] [--json out.json]

The ONNX variants pin ``runtime="onnxruntime"``: the study was run on ONNX Runtime, before
OpenVINO became the default runtime (``bench_default_engine.py`` measures that).

This is how the engines' defaults (detection size, recognition batch, minimum line width,
ONNX Runtime's memory arena, the 180-degree classifier) were chosen; ``bench_engines.py``
compares the two engines as shipped. Each VARIANT (see :func:`_variants`; default
``paddle-lib paddle onnx-lib onnx``) is one engine with one setting changed from rythmiq's
defaults, or a library's own defaults (``*-lib``), or ``onnx-first`` (the ONNX engine's
first defaults: detection 1280, lines padded to 160 px, no memory arena). The run ends with
the process's peak RSS; run one variant at a time to compare memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from typing import Any

from _dev import DEV, dev_pages

UPRIGHT = {"scribe_multicol_04_rot90ccw": -1, "scribe_multicol_04_rot180": 2}  # np.rot90 k


def _variants() -> dict[str, Any]:
    from rythmiq.ocr import EngineConfig, OnnxEngine, PaddleEngine, resolve_model

    class PaddleLib(PaddleEngine):
        def _paddle_kwargs(self) -> dict[str, Any]:
            kw = super()._paddle_kwargs()
            for key in (
                "text_det_limit_side_len",
                "text_det_limit_type",
                "text_recognition_batch_size",
            ):
                kw.pop(key)
            return kw

    def with_classifier(params: dict[str, Any]) -> dict[str, Any]:
        # RapidOCR's 180-degree line classifier, from the rapidocr wheel.
        cls = resolve_model("ch_ppocr_mobile_v2.0_cls_mobile", engine="onnx")
        return {**params, "Global.use_cls": True, "Cls.model_path": str(cls.path)}

    class OnnxLib(OnnxEngine):
        def _rapidocr_params(self) -> dict[str, Any]:
            params = super()._rapidocr_params()
            for key in (
                "Global.max_side_len",
                "Det.limit_side_len",
                "Det.limit_type",
                "Rec.rec_batch_num",
                "Rec.rec_img_shape",
                "EngineConfig.onnxruntime.enable_cpu_mem_arena",
            ):
                params.pop(key)
            return with_classifier(params)

    class OnnxCls(OnnxEngine):
        def _rapidocr_params(self) -> dict[str, Any]:
            return with_classifier(super()._rapidocr_params())

    def onnx_params(config: dict[str, Any] | None = None, **params: Any) -> Any:
        # The engine with some RapidOCR parameters replaced; keys use "__" for ".".
        class OnnxParams(OnnxEngine):
            def _rapidocr_params(self) -> dict[str, Any]:
                extra = {k.replace("__", "."): v for k, v in params.items()}
                return {**super()._rapidocr_params(), **extra}

        return lambda t: OnnxParams(
            EngineConfig(engine="onnx", runtime="onnxruntime", threads=t, **(config or {}))
        )

    def onnx_min_width(width: int) -> Any:
        # Lines narrower than `width` px (at 48 px high) are padded to it for recognition;
        # RapidOCR's (and PaddleOCR's) default is 320.
        return onnx_params(Rec__rec_img_shape=[3, 48, width])

    def p(**kw: Any) -> Any:
        return lambda t: PaddleEngine(EngineConfig(engine="paddle", threads=t, **kw))

    def o(**kw: Any) -> Any:
        return lambda t: OnnxEngine(
            EngineConfig(engine="onnx", runtime="onnxruntime", threads=t, **kw)
        )

    return {
        "paddle-lib": lambda t: PaddleLib(EngineConfig(engine="paddle", threads=t)),
        "paddle": p(),
        "paddle-det960": p(det_limit_side_len=960),
        "paddle-det1280": p(det_limit_side_len=1280),
        "paddle-det1600": p(det_limit_side_len=1600),
        "paddle-det2000": p(det_limit_side_len=2000),
        "paddle-det4000": p(det_limit_side_len=4000),
        "paddle-batch1": p(rec_batch_size=1),
        "paddle-batch16": p(rec_batch_size=16),
        "onnx-lib": lambda t: OnnxLib(
            EngineConfig(engine="onnx", runtime="onnxruntime", threads=t)
        ),
        "onnx": o(),
        "onnx-cls": lambda t: OnnxCls(
            EngineConfig(engine="onnx", runtime="onnxruntime", threads=t)
        ),
        "onnx-det960": o(det_limit_side_len=960),
        "onnx-det1280": o(det_limit_side_len=1280),
        "onnx-det1600": o(det_limit_side_len=1600),
        "onnx-det2000": o(det_limit_side_len=2000),
        "onnx-det4000": o(det_limit_side_len=4000),
        "onnx-batch1": o(rec_batch_size=1),
        "onnx-batch6": o(rec_batch_size=6),
        "onnx-w320": onnx_min_width(320),
        "onnx-w160": onnx_min_width(160),
        "onnx-w96": onnx_min_width(96),
        "onnx-w48": onnx_min_width(48),
        # RapidOCR's own setting: ONNX Runtime's CPU memory arena off.
        "onnx-noarena": onnx_params(EngineConfig__onnxruntime__enable_cpu_mem_arena=False),
        # rythmiq 0.x's first ONNX defaults (detection 1280, lines padded to 160, no arena).
        "onnx-first": onnx_params(
            {"det_limit_side_len": 1280},
            EngineConfig__onnxruntime__enable_cpu_mem_arena=False,
            Rec__rec_img_shape=[3, 48, 160],
        ),
        "onnx-batch16": o(rec_batch_size=16),
        "onnx-batch32": o(rec_batch_size=32),
    }


def sweep(args: argparse.Namespace) -> int:
    """Run the study; see the module docstring.

    Every dev OCR page is loaded as rythmiq loads it, the shipped rotated copies are turned
    upright (orientation is handled before OCR, by rythmiq.orientation), and the page is
    fitted into the default normalization box (2480x3508, as ProcessOptions does). Each
    variant (see :func:`_variants`) is one engine; each is warmed up on a small crop, then
    the pages are read by every variant in turn (page by page, so load from other processes
    hits all variants alike). Only ``engine.recognize`` is timed, all in this process.

    Variants named ``*-lib`` are the libraries' own defaults, as rythmiq used them before:
    PaddleOCR detects at full resolution (limit "min" 64, capped at 4000); RapidOCR shrinks
    the page to 2000 px, enlarges its short side to 736 for detection, and runs its
    180-degree line classifier.
    """
    if not args.variants:
        args.variants = ["paddle-lib", "paddle", "onnx-lib", "onnx"]
    variants = _variants()
    unknown = [v for v in args.variants if v not in variants]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {sorted(variants)}")

    import numpy as np

    from rythmiq import load_image
    from rythmiq.metrics import word_f1
    from rythmiq.normalize import fit_size, resize_exact

    pages = dev_pages(args.pages)
    if not pages:
        print(f"no dev pages at {DEV}", file=sys.stderr)
        return 1
    images = []
    for path, truth in pages:
        pixels = load_image(str(path)).pixels
        if path.stem in UPRIGHT:
            pixels = np.ascontiguousarray(np.rot90(pixels, UPRIGHT[path.stem]))
        size = fit_size(pixels.shape[1], pixels.shape[0], (2480, 3508))
        if size != (pixels.shape[1], pixels.shape[0]):
            pixels = resize_exact(pixels, size)
        images.append((path.stem, pixels, truth))

    engines = {}
    for name in args.variants:
        t0 = time.perf_counter()
        engine = variants[name](args.threads)
        engine.recognize(images[0][1][:400])  # first call pays kernel/arena set-up
        engines[name] = engine
        print(f"# {name}: {engine.name}, loaded + warmed in {time.perf_counter() - t0:.1f} s")

    rows: dict[str, list[tuple[str, float, float]]] = {name: [] for name in engines}
    for stem, pixels, truth in images:
        cells = []
        for name, engine in engines.items():
            t0 = time.perf_counter()
            result = engine.recognize(pixels)
            dt = time.perf_counter() - t0
            f1 = word_f1(result.text, truth)
            rows[name].append((stem, f1, dt))
            cells.append(f"{name} {f1:.3f} {dt:5.2f}s")
        h, w = pixels.shape[:2]
        print(f"{stem:32s} {w}x{h}  " + " | ".join(cells), flush=True)

    print(f"\nthreads={args.threads}, {len(images)} pages")
    print(f"{'variant':16s} {'mean F1':>8s} {'median s':>9s} {'p95 s':>7s} {'total s':>8s}")
    summary = {}
    for name, got in rows.items():
        f1s = [f for _, f, _ in got]
        times = sorted(t for _, _, t in got)
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        summary[name] = {
            "engine": engines[name].name,
            "mean_f1": statistics.fmean(f1s),
            "median_s": statistics.median(times),
            "p95_s": p95,
            "total_s": sum(times),
            "pages": {s: {"f1": f, "s": t} for s, f, t in got},
        }
        m = summary[name]
        print(
            f"{name:16s} {m['mean_f1']:8.3f} {m['median_s']:9.2f} {m['p95_s']:7.2f} "
            f"{m['total_s']:8.1f}"
        )
    # Whole-process peak: a figure for one variant when the run has only that one.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mb:.0f} MB ({', '.join(engines)})")
    for engine in engines.values():
        engine.close()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"threads": args.threads, "variants": summary, "peak_rss_mb": round(peak_mb)},
                fh,
                indent=1,
            )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", metavar="VARIANT", help="variants to compare")
    ap.add_argument("--pages", nargs="*", help="dev page stems (default: all 21)")
    ap.add_argument("--threads", type=int, default=1, help="OCR threads per engine (default 1)")
    ap.add_argument("--json", help="write the per-page figures here")
    return sweep(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
