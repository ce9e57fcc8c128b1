"""Image quality scoring: sharpness by Laplacian variance, exposure by histogram analysis.

Every function here is pure: it takes numpy arrays (grayscale ``(H, W)`` or RGB ``(H, W, 3)``
``uint8``, the Pillow/numpy convention) and returns plain values. Nothing reads or writes a file.

How the score is built (see ``docs/quality.md`` for the calibration):

* The image is converted to grayscale once and resampled so that its long side is exactly
  ``analysis_size`` pixels (default 1024): area averaging down, bicubic up. Every metric is
  computed on that analysis image, which is what makes the score independent of the input
  resolution: the same page at 4000 px, 2000 px or 700 px becomes the same 1024 px image, and
  blur is measured relative to the page (and so to its text), which is what OCR cares about.
* **Sharpness** is the variance of the Laplacian, taken per 32 px tile over the tiles that hold
  content (a blank margin says nothing about focus), summarised by the 75th percentile. It maps
  to ``[0, 1)`` by ``1 / (1 + (SHARPNESS_GATE / (2 v)) ** 2)``, so a variance equal to
  :data:`SHARPNESS_GATE` scores exactly the default threshold 0.80.
* **Exposure** is the minimum of three histogram terms, each in ``[0, 1]`` and each mapped so
  that its gate value scores 0.80: the paper white point (``underexposed``), the ink black point
  (``overexposed``: blacks lifted towards white) and the dynamic range (``low_contrast``).
* **Keeping the two apart.** Blur lifts the darkest pixels of thin strokes, which reads like
  lifted blacks, and an exposure that squeezes the ink-to-paper contrast lowers the Laplacian
  variance, which reads like blur. So the black point counts as exposure only in proportion
  to how sharp the content's edges are (``ExposureStats.ink_trust``, from the ratio of
  Laplacian to gradient energy, which no exposure change moves), and the variance is scored
  as if the trusted contrast were at least :data:`CONTRAST_REF`.
* The combined **score** is ``min(sharpness, exposure)``: a page passes only when every part
  passes, and ``reasons`` names each part below the threshold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError, OptionsError
from rythmiq._public import public
from rythmiq._util import check_image, short_repr

__all__ = [
    "BLACK_POINT_GATE",
    "CONTRAST_REF",
    "DEFAULT_THRESHOLD",
    "INK_TRUST_EDGES",
    "RANGE_GATE",
    "SHARPNESS_GATE",
    "WHITE_POINT_GATE",
    "ExposureStats",
    "QualityReport",
    "analysis_image",
    "exposure_score",
    "exposure_stats",
    "laplacian_variance",
    "luminance_histogram",
    "score_quality",
    "sharpness_score",
    "tile_laplacian_variance",
    "to_gray",
]

DEFAULT_THRESHOLD = 0.80
DEFAULT_ANALYSIS_SIZE = 1024

# Calibrated on the dev pages (docs/quality.md, benchmarks/calibrate_quality.py): sharp scans
# and photos at the 1024 px analysis size have a tile variance in the thousands; the variance
# at which PP-OCRv5 starts to lose words on blurred copies of the same pages is set to 0.80.
SHARPNESS_GATE = 250.0
# Paper white (99.5th percentile) at 0.45 of full scale scores 0.80 for "underexposed".
WHITE_POINT_GATE = 0.45
# Ink black (0.5th percentile) lifted to 0.55 of full scale scores 0.80 for "overexposed".
BLACK_POINT_GATE = 0.55
# Dynamic range (white point - black point) of 0.35 scores 0.80 for "low_contrast".
RANGE_GATE = 0.35
# Edge width of the content (see _edge_width), in pixels of the analysis image, or of the
# input when that is smaller: at or under the first the black point is read as exposure in
# full, at or over the second not at all, log-linear between. Blur that wide lifts the darkest
# pixels of thin strokes by itself. Set on the dev pages (docs/quality.md): their sharp copies
# have edges of 0.4-0.6 px, and their blurred copies that read "overexposed" before had 0.8 px
# or more, all but one.
INK_TRUST_EDGES = (0.7, 1.0)
# Ink-to-paper contrast (white point - trusted black point) under which the tile Laplacian
# variance is scaled up by (CONTRAST_REF / contrast) ** 2 before it is scored: the variance
# falls with the square of the contrast, so a faint but sharp page would otherwise read as
# blurry. Every sharp dev page has a contrast of at least 0.55, so none of them is affected.
CONTRAST_REF = 0.5

_TILE = 32
# A tile whose grey levels spread less than this (standard deviation, 0-255 scale) is blank
# paper or flat background: its Laplacian variance is sensor noise, not focus.
_CONTENT_STD = 8.0


def _gate_map(value: float, gate: float) -> float:
    """Map ``value >= 0`` to ``[0, 1)``, strictly increasing, with ``gate`` landing on 0.80.

    ``1 / (1 + (g / value) ** 2)`` with ``g = gate / 2``: a log-logistic curve. It never
    saturates to exactly 1.0 in floating point, so a sharper image always scores higher.
    """
    if value <= 0.0:
        return 0.0
    return 1.0 / (1.0 + (0.5 * gate / value) ** 2)


def to_gray(image: NDArray[Any]) -> NDArray[np.uint8]:
    """Return a 2-D ``uint8`` luminance image from a grayscale or RGB(A) ``uint8`` array.

    RGB uses the ITU-R BT.601 weights (as OpenCV and Pillow do). An alpha channel is ignored.

    Raises:
        InputError: ``input.invalid_array`` when ``image`` is not a 2-D or 3-D ``uint8`` array
            with 1, 3 or 4 channels, or is empty.
    """
    check_image(image)
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    import cv2

    code = cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(image), code), dtype=np.uint8)


def analysis_image(
    gray: NDArray[np.uint8], *, analysis_size: int = DEFAULT_ANALYSIS_SIZE
) -> NDArray[np.uint8]:
    """Resample ``gray`` so that its long side is exactly ``analysis_size`` pixels.

    Larger images go down a Gaussian pyramid (``pyrDown`` halves with proper anti-aliasing and
    is the fastest way OpenCV has to shrink) while they are at least twice the target, then
    take one final linear resize; smaller ones are enlarged with bicubic interpolation. Blur is
    then measured relative to the page, not to the pixel grid, so the same page scanned at
    300 dpi or photographed at 150 dpi scores alike, and a small, soft image scores as soft as
    it really is. A page and its half-size copy reach the same pyramid level, which is what
    keeps their scores within a few hundredths.
    """
    if analysis_size < 64:
        raise OptionsError(f"analysis_size must be >= 64, got {analysis_size}")
    h, w = gray.shape[:2]
    if max(h, w) == analysis_size:
        return gray
    import cv2

    while max(gray.shape) >= 2 * analysis_size:
        gray = np.asarray(cv2.pyrDown(gray), dtype=np.uint8)
    h, w = gray.shape[:2]
    scale = analysis_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # After the pyramid the last step is under 2x, where linear sampling barely aliases; it
    # is ten times faster than a fractional INTER_AREA. Upscaling uses bicubic.
    interpolation = cv2.INTER_LINEAR if scale < 1 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(gray, size, interpolation=interpolation), dtype=np.uint8)


def _laplacian(gray: NDArray[np.uint8]) -> NDArray[np.float32]:
    import cv2

    # int16 output is exact for uint8 input (|L| <= 1020) and 3-4x faster than float32.
    return np.asarray(cv2.Laplacian(gray, cv2.CV_16S, ksize=1), dtype=np.float32)


def laplacian_variance(gray: NDArray[np.uint8]) -> float:
    """Classic focus measure: the variance of the 4-neighbour Laplacian over the whole image."""
    check_image(gray, "gray")
    return float(np.var(_laplacian(to_gray(gray)), dtype=np.float64))


def _tile_sums(x: NDArray[Any], th: int, tile_h: int, tw: int, tile_w: int) -> NDArray[Any]:
    """Sum of ``x`` over each ``tile_h x tile_w`` tile (rows first: contiguous and fast)."""
    rows = x[: th * tile_h, : tw * tile_w].reshape(th, tile_h, tw * tile_w).sum(axis=1)
    sums: NDArray[np.float64] = rows.reshape(th, tw, tile_w).sum(axis=2, dtype=np.float64)
    return sums


@dataclass(frozen=True)
class _TileStats:
    lap_var: NDArray[np.float64]  # per-tile Laplacian variance
    lap_energy: NDArray[np.float64]  # per-tile sum of the squared Laplacian
    content: NDArray[np.bool_]  # per-tile "holds content" mask
    tile: tuple[int, int]  # tile (height, width) in pixels
    whole_lap_var: float  # Laplacian variance of the whole image


def _tiles(g: NDArray[np.uint8], tile: int) -> _TileStats:
    """Per-tile Laplacian variance and content mask, from running sums (one pass each)."""
    h, w = g.shape
    th, tw = h // tile, w // tile
    if th == 0 or tw == 0:
        # Smaller than one tile: treat the image as a single tile.
        th, tw, tile_h, tile_w = 1, 1, h, w
    else:
        tile_h = tile_w = tile
    n = float(tile_h * tile_w)
    lap = _laplacian(g)
    lap_sq = lap * lap
    pix = g.astype(np.float32)
    mean_l = _tile_sums(lap, th, tile_h, tw, tile_w) / n
    lap_energy = _tile_sums(lap_sq, th, tile_h, tw, tile_w)
    lap_var = np.maximum(lap_energy / n - mean_l**2, 0.0)
    mean_p = _tile_sums(pix, th, tile_h, tw, tile_w) / n
    var_p = _tile_sums(pix * pix, th, tile_h, tw, tile_w) / n - mean_p**2
    content = var_p >= _CONTENT_STD**2
    whole_mean = float(lap.mean(dtype=np.float64))
    whole = max(0.0, float(lap_sq.mean(dtype=np.float64)) - whole_mean**2)
    return _TileStats(lap_var, lap_energy, content, (tile_h, tile_w), whole)


def tile_laplacian_variance(
    gray: NDArray[np.uint8], *, tile: int = _TILE, percentile: float = 75.0
) -> tuple[float, float]:
    """Laplacian variance over content tiles.

    Returns ``(variance, content_fraction)``: the ``percentile`` of per-tile Laplacian variances
    among tiles whose grey-level standard deviation is at least 8, and the fraction of tiles
    that qualified. A blank image returns ``(0.0, 0.0)``.
    """
    check_image(gray, "gray")
    stats = _tiles(to_gray(gray), tile)
    return _summarise_tiles(stats.lap_var, stats.content, percentile)


def _summarise_tiles(
    lap_var: NDArray[np.float64], content: NDArray[np.bool_], percentile: float
) -> tuple[float, float]:
    n_content = int(content.sum())
    if n_content == 0:
        return 0.0, 0.0
    return float(np.percentile(lap_var[content], percentile)), n_content / content.size


def sharpness_score(variance: float, *, gate: float = SHARPNESS_GATE) -> float:
    """Map a tile Laplacian variance to ``[0, 1)``; ``variance == gate`` gives 0.80."""
    if gate <= 0:
        raise OptionsError(f"gate must be > 0, got {gate}")
    return _gate_map(variance, gate)


def luminance_histogram(gray: NDArray[np.uint8]) -> NDArray[np.int64]:
    """256-bin histogram of a ``uint8`` grayscale image."""
    check_image(gray, "gray")
    return _hist(to_gray(gray))


def _hist(g: NDArray[np.uint8], mask: NDArray[np.uint8] | None = None) -> NDArray[np.int64]:
    import cv2

    h = cv2.calcHist([g], [0], mask, [256], [0, 256])
    counts: NDArray[np.int64] = np.asarray(h, dtype=np.float64).ravel().round().astype(np.int64)
    return counts


@dataclass(frozen=True)
class ExposureStats:
    """Histogram statistics, all on a 0-1 luminance scale.

    Attributes:
        mean: Mean luminance.
        std: RMS contrast (standard deviation of luminance).
        shadows_clipped: Fraction of pixels at or below 2/255.
        highlights_clipped: Fraction of pixels at or above 253/255.
        black_point: 0.5th percentile (the ink).
        white_point: 99.5th percentile (the paper).
        dynamic_range: ``white_point - black_point``.
        ink_trust: How far the black point is read as exposure, in ``[0, 1]``: 1 when the
            content's edges are sharp, 0 when they are so blurred that blur alone explains
            lifted blacks (see :data:`INK_TRUST_EDGES`). The ``overexposed`` and
            ``low_contrast`` terms use ``black_point * ink_trust``. 1 when the statistics
            come from a histogram alone.
    """

    mean: float
    std: float
    shadows_clipped: float
    highlights_clipped: float
    black_point: float
    white_point: float
    dynamic_range: float
    ink_trust: float = 1.0

    __repr__ = short_repr

    def to_dict(self) -> dict[str, float]:
        """JSON-safe dict of the statistics."""
        return asdict(self)


def _hist_percentile(cdf: NDArray[np.float64], q: float) -> float:
    return float(np.searchsorted(cdf, q, side="left")) / 255.0


def exposure_stats(
    gray: NDArray[np.uint8] | None = None,
    *,
    hist: NDArray[Any] | None = None,
    content_hist: NDArray[Any] | None = None,
    ink_trust: float = 1.0,
) -> ExposureStats:
    """Histogram exposure statistics of ``gray``, or of a precomputed 256-bin ``hist``.

    ``content_hist``, when given and not empty, is the histogram of the pixels in content tiles
    only; the black and white points are then taken from it. On a sparse page (one line of
    text on a blank sheet) the ink is far less than 0.5 % of all pixels, so percentiles of the
    whole image would call a crisp black-on-white page "overexposed".

    ``ink_trust`` is stored as :attr:`ExposureStats.ink_trust`; :func:`score_quality` derives
    it from the sharpness of the content's edges.
    """
    if not 0.0 <= ink_trust <= 1.0:
        raise OptionsError(f"ink_trust must be within [0, 1], got {ink_trust}")
    if hist is None:
        if gray is None:
            raise OptionsError("exposure_stats needs gray or hist")
        hist = luminance_histogram(gray)
    hist = np.asarray(hist, dtype=np.float64)
    if hist.shape != (256,):
        raise OptionsError(f"hist must have 256 bins, got shape {hist.shape}")
    total = float(hist.sum())
    if total <= 0:
        raise InputError("image has no pixels", code="input.empty")
    p = hist / total
    levels = np.arange(256, dtype=np.float64) / 255.0
    mean = float((p * levels).sum())
    std = float(math.sqrt(max(0.0, float((p * (levels - mean) ** 2).sum()))))
    points = p
    if content_hist is not None:
        ch = np.asarray(content_hist, dtype=np.float64)
        if ch.shape != (256,):
            raise OptionsError(f"content_hist must have 256 bins, got shape {ch.shape}")
        if ch.sum() > 0:
            points = ch / ch.sum()
    cdf = np.cumsum(points)
    black = _hist_percentile(cdf, 0.005)
    white = _hist_percentile(cdf, 0.995)
    return ExposureStats(
        mean=mean,
        std=std,
        shadows_clipped=float(p[:3].sum()),
        highlights_clipped=float(p[253:].sum()),
        black_point=black,
        white_point=white,
        dynamic_range=max(0.0, white - black),
        ink_trust=float(ink_trust),
    )


def _trusted_contrast(stats: ExposureStats) -> tuple[float, float]:
    """``(black point, white - black)`` with the black point weighted by its trust."""
    black = stats.black_point * stats.ink_trust
    return black, max(0.0, stats.white_point - black)


def _exposure_terms(stats: ExposureStats) -> dict[str, float]:
    black, contrast = _trusted_contrast(stats)
    return {
        "underexposed": _gate_map(stats.white_point, WHITE_POINT_GATE),
        "overexposed": _gate_map(1.0 - black, 1.0 - BLACK_POINT_GATE),
        "low_contrast": _gate_map(contrast, RANGE_GATE),
    }


def _content_mask(shape: tuple[int, ...], tiles: _TileStats) -> NDArray[np.uint8]:
    """1 on the pixels of content tiles, 0 elsewhere (and past the last whole tile)."""
    th, tw = tiles.tile
    mask = np.zeros(shape[:2], np.uint8)
    grid = np.repeat(np.repeat(tiles.content.astype(np.uint8), th, axis=0), tw, axis=1)
    mask[: grid.shape[0], : grid.shape[1]] = grid
    return mask


def _gradient_energy(g: NDArray[np.uint8], mask: NDArray[np.uint8]) -> float:
    """Sum of squared forward differences (across and down) that end on ``mask``."""
    import cv2

    energy = cv2.norm(g[:, 1:], g[:, :-1], cv2.NORM_L2SQR, mask[:, 1:])
    return float(energy + cv2.norm(g[1:], g[:-1], cv2.NORM_L2SQR, mask[1:]))


def _edge_width(g: NDArray[np.uint8], tiles: _TileStats, mask: NDArray[np.uint8]) -> float:
    """Width of the content's edges: the Gaussian sigma, in pixels of ``g``, of a step edge
    with the same ratio of Laplacian to gradient energy (``inf`` when there is none).

    A step blurred with sigma ``s`` has ``sum(L**2) / sum(|grad|**2) = 1 / (2 s**2)``, so
    ``s = sqrt(G / 2L)``. Both energies scale with the square of the contrast, so the ratio
    says how wide the edges are and nothing about how dark the ink is: no exposure change
    moves it, while blur does. Noise adds Laplacian energy that a blurred edge has lost, so
    the noise floor, the 10th percentile of the flat tiles' Laplacian energy (blank paper:
    noise alone; faint text that missed the content cut sits higher), is taken off each
    content tile's first. Without content tiles there is nothing to measure: a page washed
    out to nothing and one defocused to nothing look alike (noise).
    """
    if min(g.shape) < 2 or not tiles.content.any():
        return math.inf
    lap = tiles.lap_energy[tiles.content]
    flat = tiles.lap_energy[~tiles.content]
    if flat.size:
        k = flat.size // 10
        lap = lap - float(np.partition(flat, k)[k])
    lap_energy = float(np.maximum(lap, 0.0).sum())
    grad_energy = _gradient_energy(g, mask)
    if lap_energy <= 0.0 or grad_energy <= 0.0:
        return math.inf
    return math.sqrt(grad_energy / (2.0 * lap_energy))


def _ink_trust(width: float) -> float:
    """1 for edges of at most ``INK_TRUST_EDGES[0]`` px, 0 from ``INK_TRUST_EDGES[1]`` px on."""
    sharp, blurred = INK_TRUST_EDGES
    if width <= sharp:
        return 1.0
    if width >= blurred:
        return 0.0
    return math.log(blurred / width) / math.log(blurred / sharp)


def exposure_score(stats: ExposureStats) -> float:
    """Exposure in ``[0, 1)``: the lowest of the white-point, black-point and range terms.

    The black-point and range terms use the black point weighted by ``stats.ink_trust``.
    """
    return min(_exposure_terms(stats).values())


@public
@dataclass(frozen=True)
class QualityReport:
    """The verdict on one image.

    Attributes:
        score: ``min(sharpness, exposure)`` in ``[0, 1]``.
        passed: ``score >= threshold``.
        threshold: The gate the score was compared with.
        sharpness: Sharpness score in ``[0, 1]``.
        exposure: Exposure score in ``[0, 1]``.
        reasons: Why the image fails, in a stable order, from ``"blurry"``, ``"underexposed"``,
            ``"overexposed"``, ``"low_contrast"``, ``"blank"``. Empty when it passes.
        laplacian_variance: Whole-image Laplacian variance at the analysis size.
        tile_laplacian_variance: The content-tile variance the sharpness score comes from
            (scaled by ``(CONTRAST_REF / contrast) ** 2`` first when the trusted ink-to-paper
            contrast is under :data:`CONTRAST_REF`).
        content_fraction: Fraction of tiles that hold content.
        exposure_stats: The histogram statistics.
        analysis_size: ``(width, height)`` of the analysis image the metrics were taken on.
    """

    score: float
    passed: bool
    threshold: float
    sharpness: float
    exposure: float
    reasons: tuple[str, ...]
    # The measurements behind the scores: in to_dict(), not in the one-line repr.
    laplacian_variance: float = field(repr=False)
    tile_laplacian_variance: float = field(repr=False)
    content_fraction: float = field(repr=False)
    exposure_stats: ExposureStats = field(repr=False)
    analysis_size: tuple[int, int] = field(repr=False)

    __repr__ = short_repr

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (plain floats, lists for tuples)."""
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        d["analysis_size"] = list(self.analysis_size)
        return d

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: score against threshold, a bar per metric, reasons."""
        from rythmiq._html import quality_report_html  # upward, lazy: notebook display only

        return quality_report_html(self)


@public
def score_quality(
    image: NDArray[np.uint8],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    analysis_size: int = DEFAULT_ANALYSIS_SIZE,
    sharpness_gate: float = SHARPNESS_GATE,
    gray: NDArray[np.uint8] | None = None,
) -> QualityReport:
    """Score the sharpness and exposure of a document image.

    Args:
        image: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB ``uint8`` array.
        threshold: Pass/fail gate for the combined score, in ``[0, 1]``.
        analysis_size: Long side, in pixels, of the image the metrics are taken on.
        sharpness_gate: Tile Laplacian variance that scores 0.80 (see :data:`SHARPNESS_GATE`).
        gray: The grayscale of ``image`` if the caller already has it.

    Raises:
        OptionsError: ``threshold`` outside ``[0, 1]`` or another bad parameter.
        InputError: ``image`` is not a usable image array.
    """
    if not 0.0 <= threshold <= 1.0:
        raise OptionsError(f"threshold must be within [0, 1], got {threshold}")
    g = to_gray(image) if gray is None else to_gray(gray)
    small = analysis_image(g, analysis_size=analysis_size)
    tiles = _tiles(small, _TILE)
    variance, content = _summarise_tiles(tiles.lap_var, tiles.content, 75.0)
    mask = _content_mask(small.shape, tiles)
    if max(g.shape) < max(small.shape):
        # Enlarging blurs edges by interpolation, which lifts no blacks: judge the input's own.
        native = _tiles(g, _TILE)
        width = _edge_width(g, native, _content_mask(g.shape, native))
    else:
        width = _edge_width(small, tiles, mask)
    trust = _ink_trust(width)
    stats = exposure_stats(hist=_hist(small), content_hist=_hist(small, mask), ink_trust=trust)
    _, contrast = _trusted_contrast(stats)
    gain = max(1.0, (CONTRAST_REF / max(contrast, 1.0 / 255.0)) ** 2)
    sharp = sharpness_score(variance * gain, gate=sharpness_gate)
    terms = _exposure_terms(stats)
    expo = min(terms.values())
    score = min(sharp, expo)
    reasons: list[str] = []
    if content == 0.0:
        reasons.append("blank")
    elif sharp < threshold:
        reasons.append("blurry")
    reasons.extend(name for name, value in terms.items() if value < threshold)
    return QualityReport(
        score=score,
        passed=score >= threshold,
        threshold=threshold,
        sharpness=sharp,
        exposure=expo,
        reasons=tuple(reasons),
        laplacian_variance=tiles.whole_lap_var,
        tile_laplacian_variance=variance,
        content_fraction=content,
        exposure_stats=stats,
        analysis_size=(int(small.shape[1]), int(small.shape[0])),
    )
