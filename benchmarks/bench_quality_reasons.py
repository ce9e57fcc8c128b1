"""Quality reasons and the gate's power to predict OCR success: the issue-18 scoring against
the current one, side by side in one run.

    python benchmarks/bench_quality_reasons.py [--pages STEM ... | --all-pages]
                                               [--conditions NAME ...] [--threads N]
                                               [--reuse rows.json] [--json rows.json]

The dev OCR pages of :data:`DEFAULT_PAGES` (``../shared/data/dev/ocr``; ``--all-pages`` for
every upright one; the two rotated copies are always left out, the engine here does not turn
pages) are degraded in each of :data:`CONDITIONS` (Gaussian blur at the page's own
resolution; exposure changes; one of both) and each copy is

* scored by the **old** scoring, ``rythmiq/quality.py`` as it was at commit :data:`OLD_REF`
  (issue 18), loaded from git as a module of its own, and by the **new** one (this checkout);
* read by the default OCR engine (``rythmiq.ocr.create_engine``, one thread) and scored by
  word-F1 against the ground truth.

A copy's OCR **succeeds** when its word-F1 is at least 0.9 of the sharp, unaltered copy's
(the definition ``benchmarks/calibrate_quality.py`` calibrated the sharpness gate with);
pages whose unaltered copy reads under 0.5 are left out of the AUC (they say nothing about
the image). The script prints

1. the reason counts per condition, old -> new (how often a blurred-only copy reads
   ``overexposed``, how often an exposure change is caught);
2. the AUC (Mann-Whitney, ties count half) of the score and of the pass/fail gate for
   predicting OCR success, old and new, on all copies and on blur-only copies;
3. the reasons of the real-defocus dev quality set (``../shared/data/dev/quality``, no text);
4. the time of ``score_quality``, new over old, on the same arrays, alternating which goes
   first.

``--reuse`` takes the F1 of the copies an earlier ``--json`` file holds instead of reading
them again (the scoring is always recomputed; copies it lacks are read): that is how the
scoring can be iterated on in seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from _dev import DEV, dev_pages  # noqa: E402

HERE = Path(__file__).resolve().parent
#: The commit whose ``rythmiq/quality.py`` is the "old" (issue-18) scoring.
OLD_REF = "16a8759"
#: The pages of a default run (about 8 minutes on two shared cores): every upright dev OCR
#: page but the three dense scribe pages (multicol_04, multicol_11, table_10), which take five
#: times as long to read. ``--all-pages`` adds them.
DEFAULT_PAGES = [
    *(f"sroie_{n}" for n in ("008", "070", "131", "181", "248", "313", "364", "417", "467")),
    "sroie_550",
    "sroie_610",
    "scribe_deposition_01",
    "scribe_multicol_08",
    "tess_HelloGoogle",
    "tess_segmodeimg",
    "tess_trainingtimes",
]
REASONS = ("blank", "blurry", "underexposed", "overexposed", "low_contrast")
EXPOSURE = {"underexposed", "overexposed", "low_contrast"}
BLUR_KINDS = ("sharp", "blur")


def _blur(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    import cv2

    return lambda img: cv2.GaussianBlur(img, (0, 0), sigma)


def _levels(low: int) -> Callable[[np.ndarray], np.ndarray]:
    """Levels 0..255 mapped to ``low``..255: the blacks lifted, the paper kept (washed out)."""
    return lambda img: np.round(low + img.astype(np.float32) * ((255 - low) / 255)).astype(np.uint8)


def _add(k: int) -> Callable[[np.ndarray], np.ndarray]:
    """``k`` levels of light added: the paper clips at white and the ink lifts."""
    return lambda img: np.clip(img.astype(np.int16) + k, 0, 255).astype(np.uint8)


def _gamma(g: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda img: np.round(255 * (img / 255.0) ** g).astype(np.uint8)


def _gain(k: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda img: (img * k).astype(np.uint8)


def _squeeze(k: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda img: (128 + (img.astype(np.float32) - 128) * k).astype(np.uint8)


def _then(*fns: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def run(img: np.ndarray) -> np.ndarray:
        for fn in fns:
            img = fn(img)
        return img

    return run


#: name -> (kind, what, transform). Kinds: ``sharp``, ``blur`` (blur only), ``over``,
#: ``under``, ``contrast`` (exposure only, on the sharp page), ``both``.
CONDITIONS: dict[str, tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = {
    "sharp": ("sharp", "the page as it is", lambda img: img),
    "blur1": ("blur", "Gaussian sigma 1 px", _blur(1.0)),
    "blur2": ("blur", "Gaussian sigma 2 px", _blur(2.0)),
    "blur3": ("blur", "Gaussian sigma 3 px", _blur(3.0)),
    "blur4": ("blur", "Gaussian sigma 4 px", _blur(4.0)),
    "levels100": ("over", "levels mapped to 100..255", _levels(100)),
    "levels150": ("over", "levels mapped to 150..255", _levels(150)),
    "add120": ("over", "+120 levels of light, clipped", _add(120)),
    "gamma0.4": ("over", "gamma 0.4 (mid-tones lifted)", _gamma(0.4)),
    "dark0.4": ("under", "every level x 0.4", _gain(0.4)),
    "dark0.25": ("under", "every level x 0.25", _gain(0.25)),
    "flat0.3": ("contrast", "levels squeezed to 0.3 about mid-grey", _squeeze(0.3)),
    "blur3+levels150": ("both", "sigma 3 px, then levels 150..255", _then(_blur(3), _levels(150))),
}
#: The reason an exposure change should bring, per kind.
EXPECTED = {"over": "overexposed", "under": "underexposed", "contrast": "low_contrast"}


def old_quality(ref: str = OLD_REF) -> ModuleType:
    """``rythmiq/quality.py`` at ``ref``, loaded from git as the module ``_quality_old``."""
    repo = HERE.parent
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", f"{ref}:rythmiq/quality.py"],
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        raise SystemExit(f"cannot read the old scoring from git ({ref}): {shown.stderr.strip()}")
    source = shown.stdout
    spec = importlib.util.spec_from_loader("_quality_old", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    exec(compile(source, f"{ref}:rythmiq/quality.py", "exec"), module.__dict__)
    return module


def auc(scores: list[float], success: list[bool]) -> float:
    """Mann-Whitney AUC: P(a success scores above a failure), ties counted half."""
    pos = np.array([s for s, ok in zip(scores, success, strict=True) if ok])
    neg = np.array([s for s, ok in zip(scores, success, strict=True) if not ok])
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (pos.size * neg.size))


def _report(q: Any) -> dict[str, Any]:
    return {
        "score": round(float(q.score), 4),
        "passed": bool(q.passed),
        "sharpness": round(float(q.sharpness), 4),
        "exposure": round(float(q.exposure), 4),
        "reasons": list(q.reasons),
        "ink_trust": round(float(getattr(q.exposure_stats, "ink_trust", 1.0)), 3),
    }


def score_copies(
    pages: list[tuple[Path, str]],
    conditions: list[str],
    old: ModuleType,
    f1_of: Callable[[str, str, np.ndarray, str], float],
) -> list[dict[str, Any]]:
    """One row per (page, condition): old and new reports, and the copy's OCR word-F1."""
    from rythmiq import load_image
    from rythmiq.quality import score_quality

    rows = []
    for path, truth in pages:
        image = load_image(str(path)).pixels
        for name in conditions:
            kind, _, transform = CONDITIONS[name]
            img = transform(image)
            row = {
                "page": path.stem,
                "condition": name,
                "kind": kind,
                "old": _report(old.score_quality(img)),
                "new": _report(score_quality(img)),
                "f1": round(f1_of(path.stem, name, img, truth), 4),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def ocr_f1(threads: int, reuse: Path | None) -> Callable[[str, str, np.ndarray, str], float]:
    """Word-F1 of the default engine on each copy, or the F1 an earlier ``--json`` run wrote
    for it (``reuse``); the engine is created once, when a copy first needs it."""
    from rythmiq.metrics import word_f1
    from rythmiq.ocr import EngineConfig, OcrEngine, create_engine

    known: dict[tuple[str, str], float] = {}
    if reuse is not None:
        known = {
            (r["page"], r["condition"]): r["f1"] for r in json.loads(reuse.read_text())["rows"]
        }
    engine: list[OcrEngine] = []

    def f1(page: str, condition: str, img: np.ndarray, truth: str) -> float:
        if (page, condition) in known:
            return float(known[(page, condition)])
        if not engine:
            engine.append(create_engine(EngineConfig(threads=threads)))
        return word_f1(engine[0].recognize(img).text, truth)

    return f1


def with_success(rows: list[dict[str, Any]], min_base: float = 0.5) -> list[dict[str, Any]]:
    """Rows of pages whose sharp copy reads >= ``min_base``, each with ``success`` added."""
    base = {r["page"]: r["f1"] for r in rows if r["condition"] == "sharp"}
    out = []
    for r in rows:
        b = base.get(r["page"], 0.0)
        if b >= min_base:
            out.append({**r, "success": r["f1"] >= 0.9 * b})
    return out


def _counts(rows: list[dict[str, Any]], which: str) -> Counter[str]:
    c: Counter[str] = Counter()
    for r in rows:
        c.update(r[which]["reasons"])
        c["failed"] += not r[which]["passed"]
    return c


def print_reasons(rows: list[dict[str, Any]], conditions: list[str]) -> None:
    print("\n## Reasons per condition (copies with the reason, old -> new)\n")
    cols = ("failed", *REASONS)
    print("| condition | what | copies | OCR ok | " + " | ".join(cols) + " |")
    print("|---|---|---|---|" + "---|" * len(cols))
    for name in conditions:
        sel = [r for r in rows if r["condition"] == name]
        if not sel:
            continue
        old, new = _counts(sel, "old"), _counts(sel, "new")
        ok = sum(r["f1"] >= 0.9 * _base(rows, r["page"]) for r in sel)
        cells = [f"{old[c]} -> {new[c]}" if old[c] != new[c] else f"{old[c]}" for c in cols]
        print(f"| {name} | {CONDITIONS[name][1]} | {len(sel)} | {ok} | " + " | ".join(cells) + " |")


def _base(rows: list[dict[str, Any]], page: str) -> float:
    return next(r["f1"] for r in rows if r["page"] == page and r["condition"] == "sharp")


def figures(rows: list[dict[str, Any]], which: str) -> dict[str, Any]:
    """Misread counts and AUCs of one scoring (``"old"`` or ``"new"``)."""
    blur = [r for r in rows if r["kind"] == "blur"]
    expo = [r for r in rows if r["kind"] in EXPECTED]
    d: dict[str, Any] = {
        "blur_overexposed": sum("overexposed" in r[which]["reasons"] for r in blur),
        "blur_exposure_reason": sum(bool(EXPOSURE & set(r[which]["reasons"])) for r in blur),
        "blur_copies": len(blur),
        "exposure_caught": sum(EXPECTED[r["kind"]] in r[which]["reasons"] for r in expo),
        "exposure_blurry": sum("blurry" in r[which]["reasons"] for r in expo),
        "exposure_copies": len(expo),
    }
    scored = with_success(rows)
    for label, sel in (("all", scored), ("blur", [r for r in scored if r["kind"] in BLUR_KINDS])):
        ok = [r["success"] for r in sel]
        d[f"auc_score_{label}"] = auc([r[which]["score"] for r in sel], ok)
        d[f"auc_gate_{label}"] = auc([float(r[which]["passed"]) for r in sel], ok)
        d[f"n_{label}"], d[f"n_success_{label}"] = len(sel), sum(ok)
    return d


def print_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Misread counts and AUCs, old and new, as a table; returns them."""
    o, n = figures(rows, "old"), figures(rows, "new")
    changed = [r for r in with_success(rows) if r["old"]["passed"] != r["new"]["passed"]]
    right = sum(r["new"]["passed"] == r["success"] for r in changed)

    def count(key: str, total: str) -> tuple[str, str]:
        return f"{o[key]} / {o[total]}", f"{n[key]} / {n[total]}"

    table = [
        ("blur-only copies reading `overexposed`", *count("blur_overexposed", "blur_copies")),
        ("blur-only copies with an exposure reason", *count("blur_exposure_reason", "blur_copies")),
        (
            "exposure-changed copies given their reason",
            *count("exposure_caught", "exposure_copies"),
        ),
        ("exposure-changed copies reading `blurry`", *count("exposure_blurry", "exposure_copies")),
    ]
    for label, what in (("all", "all copies"), ("blur", "sharp and blur-only copies")):
        size = f"n={o[f'n_{label}']}, {o[f'n_success_{label}']} read well"
        for key, name in (("score", "score"), ("gate", "gate (pass/fail)")):
            value = f"auc_{key}_{label}"
            table.append(
                (f"AUC of the {name}, {what} ({size})", f"{o[value]:.3f}", f"{n[value]:.3f}")
            )
    table.append(
        ("copies whose pass/fail changed (new verdict right)", "", f"{len(changed)} ({right})")
    )
    print("\n## Summary (old = issue-18 scoring, new = this checkout)\n")
    print("| figure | old | new |\n|---|---|---|")
    for name, old, new in table:
        print(f"| {name} | {old} | {new} |")
    return {"old": o, "new": n, "pass_changed": len(changed), "pass_changed_right": right}


def defocus_set(old: ModuleType) -> list[dict[str, Any]]:
    """Old and new reasons of the real-defocus dev quality images."""
    import cv2

    from rythmiq.quality import score_quality

    manifest = DEV / "quality" / "manifest.jsonl"
    if not manifest.is_file():
        return []
    out = []
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        img = cv2.imread(str(DEV / "quality" / r["image"]), cv2.IMREAD_GRAYSCALE)
        out.append(
            {
                "image": r["image"],
                "step": r["label"]["blur_step"],
                "old": _report(old.score_quality(img)),
                "new": _report(score_quality(img)),
            }
        )
    print("\n## Real defocus (dev quality set, HDC2021 focus steps; no OCR truth)\n")
    print("| image | focus step | old reasons | new reasons |")
    print("|---|---|---|---|")
    for r in out:
        o, n = ", ".join(r["old"]["reasons"]) or "-", ", ".join(r["new"]["reasons"]) or "-"
        print(f"| {r['image']} | {r['step']} | {o} | {n} |")
    return out


def _alternating(images: list[np.ndarray], fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Seconds per call of each of ``fns`` over ``images``, the order alternating call by call."""
    total = dict.fromkeys(fns, 0.0)
    for fn in fns.values():
        fn(images[0])  # warm-up
    for i in range(repeats):
        for j, img in enumerate(images):
            for which in list(fns) if (i + j) % 2 == 0 else list(fns)[::-1]:
                t0 = time.perf_counter()
                fns[which](img)
                total[which] += time.perf_counter() - t0
    return {k: v / (repeats * len(images)) for k, v in total.items()}


def timing(pages: list[tuple[Path, str]], old: ModuleType, repeats: int = 10) -> dict[str, float]:
    """Time of ``score_quality``, old and new, on one core: on the dev pages (sharp and blurred
    with sigma 3) and on the 12 MP noisy rendered page of ``benchmarks/bench_core.py``."""
    import cv2

    from rythmiq import load_image
    from rythmiq.quality import score_quality

    sys.path.insert(0, str(HERE.parent / "tests"))
    from _helpers import render_page

    cv2.setNumThreads(1)
    images = [load_image(str(p)).pixels for p, _ in pages]
    images += [CONDITIONS["blur3"][2](img) for img in images]
    big = render_page(width=3000, height=4000, font_size=70, margin=200)
    noise = np.random.default_rng(0).normal(0, 4, big.shape)
    big = np.clip(big + noise, 0, 255).astype(np.uint8)
    fns = {"old": old.score_quality, "new": score_quality}
    dev = _alternating(images, fns, repeats)
    mp = _alternating([big], fns, 4 * repeats)
    cv2.setNumThreads(0)
    out = {
        "old_ms": 1000 * dev["old"],
        "new_ms": 1000 * dev["new"],
        "ratio": dev["new"] / dev["old"],
        "old_mp_per_s": big.shape[0] * big.shape[1] / 1e6 / mp["old"],
        "new_mp_per_s": big.shape[0] * big.shape[1] / 1e6 / mp["new"],
    }
    print(
        f"\n## score_quality time, one core\n\n{len(images)} dev arrays x {repeats}: old "
        f"{out['old_ms']:.1f} ms, new {out['new_ms']:.1f} ms per call, new/old = "
        f"{out['ratio']:.2f}\n12 MP page: old {out['old_mp_per_s']:.0f} MP/s, new "
        f"{out['new_mp_per_s']:.0f} MP/s, new/old time = "
        f"{out['old_mp_per_s'] / out['new_mp_per_s']:.2f}"
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", nargs="*", default=DEFAULT_PAGES, help="dev page stems")
    ap.add_argument("--all-pages", action="store_true", help="every upright dev OCR page")
    ap.add_argument("--conditions", nargs="*", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--reuse", type=Path, help="take the F1 of the copies it has from this earlier --json"
    )
    ap.add_argument("--json", type=Path, help="write the rows and figures here")
    ap.add_argument("--old-ref", default=OLD_REF, help="git commit of the old scoring")
    args = ap.parse_args()

    pages = [
        p for p in dev_pages(None if args.all_pages else args.pages) if "_rot" not in p[0].stem
    ]
    if not pages:
        print(f"no dev pages found ({DEV / 'ocr'})", file=sys.stderr)
        return 1
    conditions = ["sharp", *[c for c in args.conditions if c != "sharp"]]
    old = old_quality(args.old_ref)
    f1_of = ocr_f1(args.threads, args.reuse)
    t0 = time.perf_counter()
    rows = score_copies(pages, conditions, old, f1_of)
    print(
        f"\n{len(pages)} pages x {len(conditions)} conditions in {time.perf_counter() - t0:.0f} s"
    )
    print_reasons(rows, conditions)
    summary = print_summary(rows)
    defocus = defocus_set(old)
    times = timing(pages, old)
    if args.json:
        doc = {"rows": rows, "summary": summary, "defocus": defocus, "timing": times}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
