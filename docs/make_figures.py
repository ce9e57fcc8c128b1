"""Draw the quality-score figures of docs/quality.md from the real dev pages.

    python docs/make_figures.py [--out docs/img]

The dev pages are found like the benchmarks find them: ``$RYTHMIQ_DEV_DATA``, else
``../shared/data/dev`` next to the repository. Their licences forbid shipping them, so only the
plots are written (and committed); no page image is copied. Each page is degraded
synthetically (Gaussian blur, exposure gain) at its own resolution and scored with
``rythmiq.quality.score_quality``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEV = Path(os.environ.get("RYTHMIQ_DEV_DATA", REPO.parent / "shared" / "data" / "dev"))

# Receipts, a dense transcript, a two-column report and a 300-dpi render: the kinds of page the
# sharpness gate was calibrated on (benchmarks/calibrate_quality.py uses most of them too).
PAGES = [
    "sroie_070",
    "sroie_417",
    "sroie_008",
    "scribe_deposition_01",
    "scribe_multicol_08",
    "tess_segmodeimg",
]
SIGMAS = np.round(np.arange(0.0, 4.0001, 0.25), 2)
# Exposure change in stops, from dark to blown out. Under (stops < 0) every level is scaled by
# 2**stops, so the paper darkens towards black; over (stops > 0) every level's distance to white
# is scaled by 2**-stops, so the ink is lifted towards white as in a washed-out photo.
STOPS = np.round(np.arange(-3.0, 3.0001, 0.25), 2)
THRESHOLD = 0.80
SOURCE_NOTE = "docs/make_figures.py on the dev OCR pages"


def find_pages(names: list[str]) -> list[tuple[str, Path]]:
    """``(name, path)`` of the requested dev OCR pages, in the order asked for."""
    manifest = DEV / "ocr" / "manifest.jsonl"
    if not manifest.is_file():
        return []
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    by_stem = {Path(r["image"]).stem: DEV / "ocr" / r["image"] for r in rows}
    return [(n, by_stem[n]) for n in names if n in by_stem and by_stem[n].is_file()]


def blur_curves(image: np.ndarray) -> tuple[list[float], list[float]]:
    """Score and sharpness of ``image`` blurred with each of :data:`SIGMAS`."""
    import cv2

    from rythmiq.quality import score_quality

    scores, sharp = [], []
    for sigma in SIGMAS:
        img = image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), float(sigma))
        report = score_quality(img, threshold=THRESHOLD)
        scores.append(report.score)
        sharp.append(report.sharpness)
    return scores, sharp


def expose(image: np.ndarray, stops: float) -> np.ndarray:
    """``image`` darkened (``stops < 0``) or washed out (``stops > 0``) by ``abs(stops)`` stops."""
    base = image.astype(np.float32)
    gain = 2.0 ** -abs(stops)
    out = base * gain if stops < 0 else 255.0 - (255.0 - base) * gain
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def exposure_curves(image: np.ndarray) -> tuple[list[float], list[float]]:
    """Score and exposure of ``image`` exposed by each of :data:`STOPS`."""
    from rythmiq.quality import score_quality

    scores, expo = [], []
    for stops in STOPS:
        img = expose(image, float(stops))
        report = score_quality(img, threshold=THRESHOLD)
        scores.append(report.score)
        expo.append(report.exposure)
    return scores, expo


def plot(
    path: Path,
    x: np.ndarray,
    curves: dict[str, tuple[list[float], list[float]]],
    *,
    xlabel: str,
    part: str,
    title: str,
) -> None:
    """Two panels, the combined score and one component, one line per page."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, layout="constrained")
    for ax, which, label in ((axes[0], 0, "score"), (axes[1], 1, part)):
        for name, values in curves.items():
            ax.plot(x, values[which], marker="o", markersize=3, linewidth=1.4, label=name)
        ax.axhline(THRESHOLD, color="black", linestyle="--", linewidth=1)
        ax.text(x[0], THRESHOLD + 0.015, f"pass threshold {THRESHOLD:.2f}", fontsize=8)
        ax.set_title(f"QualityReport.{label}", fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (0-1)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, title="dev page")
    fig.supxlabel(xlabel, fontsize=10)
    fig.suptitle(f"{title} ({SOURCE_NOTE})", fontsize=11)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="output folder")
    ap.add_argument("--pages", nargs="*", default=PAGES, help="dev OCR page names (file stems)")
    args = ap.parse_args()

    pages = find_pages(args.pages)
    if not pages:
        print(
            f"make_figures: no dev pages found under {DEV / 'ocr'} (set RYTHMIQ_DEV_DATA to the "
            "dev data folder, the one holding ocr/manifest.jsonl); no figure written.",
            file=sys.stderr,
        )
        return 1

    import matplotlib

    matplotlib.use("Agg")

    from rythmiq import load_image

    blur: dict[str, tuple[list[float], list[float]]] = {}
    light: dict[str, tuple[list[float], list[float]]] = {}
    for name, path in pages:
        image = load_image(str(path)).pixels
        blur[name] = blur_curves(image)
        light[name] = exposure_curves(image)
        whole_stops = [
            f"{s:+g}: {v:.2f}" for s, v in zip(STOPS, light[name][1], strict=True) if s % 1 == 0
        ]
        print(
            f"{name:22s} score {blur[name][0][0]:.3f} unblurred, {blur[name][0][-1]:.3f} at sigma "
            f"{SIGMAS[-1]:g}; exposure by stops {', '.join(whole_stops)}"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    plot(
        args.out / "quality_vs_blur.png",
        SIGMAS,
        blur,
        xlabel="Gaussian blur sigma (px of the original page)",
        part="sharpness",
        title="Quality score against blur",
    )
    plot(
        args.out / "quality_vs_exposure.png",
        STOPS,
        light,
        xlabel="exposure change in stops (< 0: darker, > 0: washed out towards white)",
        part="exposure",
        title="Quality score against exposure",
    )
    for f in ("quality_vs_blur.png", "quality_vs_exposure.png"):
        print(f"wrote {args.out / f} ({(args.out / f).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
