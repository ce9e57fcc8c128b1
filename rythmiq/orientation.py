"""Page orientation (0/90/180/270 degrees) and small-skew detection and correction.

No orientation model is needed. The text-line axis (horizontal or vertical) and the skew
come from the binarized page alone (:func:`estimate_skew_and_axis`); which way up the lines
are (0 or 180 degrees, 90 or 270) is decided by reading a few line crops both ways up with
the caller's :class:`~rythmiq.ocr.OcrEngine` (its public ``read_lines`` or ``recognize``) and
keeping the reading that finds more confident letters and digits.

Conventions, shared by :class:`Orientation`, :func:`detect_orientation` and
:func:`apply_orientation`:

* ``rotation`` is how many degrees **clockwise** the input must be turned to be upright:
  ``np.rot90(pixels, k=-(rotation // 90))``. A page that was turned 90 degrees
  counter-clockwise has ``rotation == 90``.
* ``skew`` is measured on the page *after* that turn, in degrees, positive when the text
  lines rise to the right (the content is turned counter-clockwise, as Pillow's
  ``Image.rotate(skew)`` would turn an upright page). :func:`apply_orientation` removes it by
  turning the page ``skew`` degrees clockwise.

Images are ``(H, W)`` grayscale or ``(H, W, 3)`` RGB ``uint8`` arrays, as everywhere in
rythmiq.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import OptionsError
from rythmiq._util import short_repr

if TYPE_CHECKING:
    from rythmiq.ocr import OcrEngine

__all__ = [
    "AxisEstimate",
    "Orientation",
    "apply_orientation",
    "detect_orientation",
    "estimate_skew_and_axis",
]

#: Long side, in pixels, of the image the profiles are computed on.
ANALYSIS_SIZE = 1000
#: Height, in pixels, each line crop is scaled to for recognition.
_CROP_HEIGHT = 40
#: Longest line crop, in crop heights (about 20-25 characters).
_CROP_ASPECT = 12
#: Line crops read in each round, both ways up; a round stops the search once decisive.
_ROUNDS = (1, 2, 3)
#: White space between and around crops in the composite.
_GAP = 16
#: At most this many ink pixels are projected; more only cost time.
_MAX_POINTS = 60_000
#: Below this fraction of ink pixels the page is treated as blank.
_MIN_INK = 2e-4
#: An axis margin under this reads crops for both axes.
_AXIS_AMBIGUOUS = 0.3
#: Unless beaten by this factor, the reading that leaves the page as the profiles found it
#: (rotation 0, or 90 for vertical lines) wins over the turned one.
_PRIOR = 1.25
#: A round is decisive when the best reading has this much evidence ...
_DECISIVE_SCORE = 8.0
#: ... and beats every other by this factor.
_DECISIVE_RATIO = 3.0


@dataclass(frozen=True)
class Orientation:
    """How a page must be turned to be upright, as found by :func:`detect_orientation`.

    Attributes:
        rotation: ``0``, ``90``, ``180`` or ``270``: degrees **clockwise** the input must be
            turned to be upright.
        skew: Residual skew in degrees, measured after ``rotation``; positive when the text
            lines rise to the right (content turned counter-clockwise).
            :func:`apply_orientation` turns the page ``skew`` degrees clockwise to level it.
        confidence: In ``[0, 1]``: how clearly reading the line crops separated the chosen
            way up from the best other candidate: ``1 - other / chosen``, where each is the
            sum over the lines read of ``confidence**2`` times their letters and digits.
            Above about 0.6 the readings differed clearly; ``0.0`` when nothing was read
            (the rotation is then ``0``).
        method: ``"profile+recognition"`` (lines found and read), ``"blank"`` (too little
            ink to look for lines; no engine call) or ``"unreadable"`` (no usable line, or
            nothing read either way up; rotation and skew are left at 0).
    """

    rotation: int
    skew: float
    confidence: float
    method: str

    __repr__ = short_repr

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the four fields."""
        return {
            "rotation": int(self.rotation),
            "skew": float(self.skew),
            "confidence": float(self.confidence),
            "method": self.method,
        }


@dataclass(frozen=True)
class AxisEstimate:
    """The text-line axis and skew of a page, from its pixels alone (no model).

    Attributes:
        rotation: ``0`` when the text lines run horizontally, ``90`` when they run
            vertically; turning the page this many degrees clockwise makes them horizontal
            (whether it then reads upside down is not known here).
        skew: Skew in degrees after that turn, with the sign convention of
            :attr:`Orientation.skew`.
        axis_margin: How clearly the axis was told apart, ``>= 0``: the mean log ratio of
            ink blobs after smearing the page across versus along the chosen axis (see
            :func:`estimate_skew_and_axis`). Pages of printed text mostly score 0.5 to 2;
            under 0.3 the axis is uncertain and :func:`detect_orientation` reads both.
        ink: Fraction of the image's pixels taken as ink (after inverting a light-on-dark
            page); ``0.0`` for a blank page.
        blank: ``True`` when there was too little ink to say anything (then ``rotation`` and
            ``skew`` are 0).
    """

    rotation: int
    skew: float
    axis_margin: float
    ink: float
    blank: bool


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class _Ink:
    """The ink of a page: its mask, the fraction of pixels it covers, the letter size."""

    mask: NDArray[np.bool_]
    fraction: float
    letter: float


def _ink_mask(gray: NDArray[np.uint8]) -> _Ink:
    """Ink pixels of ``gray`` (Otsu; dark ink, or light ink on a mostly dark page).

    Large blobs (photos, filled boxes) and one- or two-pixel specks are dropped: they carry
    no line direction and a photo would otherwise dominate every profile. ``letter`` is the
    median of the longer side of the remaining blobs, which is about the letter height
    whichever way the page is turned.
    """
    import cv2

    if gray.size == 0 or int(gray.max()) - int(gray.min()) < 24:
        return _Ink(np.zeros(gray.shape, dtype=bool), 0.0, 0.0)
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    if binary.mean() > 0.5:  # light text on a dark page
        binary = 1 - binary
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    limit = 0.08 * max(gray.shape)
    w, h, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, 4]
    keep = (area > 2) & ~((w > limit) & (h > limit))
    keep[0] = False
    if not keep.any():
        return _Ink(np.zeros(gray.shape, dtype=bool), 0.0, 0.0)
    mask = keep[labels]
    letter = float(np.median(np.maximum(w, h)[keep]))
    return _Ink(mask, float(mask.mean()), letter)


def _profile_score(coord: NDArray[np.float64], size: int) -> float:
    """Sharpness of the profile of points projected to ``coord``: sum of squared bin steps."""
    hist = np.bincount(coord.astype(np.int64), minlength=size).astype(np.float64)
    return float(np.sum(np.diff(hist) ** 2))


def _best_angle(
    xs: NDArray[np.float64], ys: NDArray[np.float64], angles: NDArray[np.float64]
) -> float:
    """The angle (degrees) whose rotation flattens lines through (xs, ys) best.

    A line rising to the right at ``a`` degrees projects to a constant ``x sin a + y cos a``.
    """
    offset = float(np.hypot(xs.max(), ys.max())) + 2.0
    size = int(2 * offset) + 2
    best, best_score = 0.0, -1.0
    for a in angles:
        r = math.radians(float(a))
        score = _profile_score(xs * math.sin(r) + ys * math.cos(r) + offset, size)
        if score > best_score:
            best, best_score = float(a), score
    return best


def _axis_score(mask: NDArray[np.bool_], letter: float) -> float:
    """Evidence that the text lines of ``mask`` run horizontally (> 0) or vertically (< 0).

    Smearing ink along the lines by a fraction of the letter height joins the letters of a
    word into one blob, while smearing it across the lines joins almost nothing (lines are
    further apart than letters). The score is the mean log of (blobs after a vertical smear)
    over (blobs after a horizontal smear), for smears of 0.3, 0.5 and 0.7 letter heights
    (at least 3, 5 and 7 px). Unlike a projection profile, it is not fooled by the aligned
    character columns of a monospaced receipt.
    """
    import cv2

    m = mask.view(np.uint8)
    logs = []
    for base, frac in ((3, 0.3), (5, 0.5), (7, 0.7)):
        k = max(base, round(frac * letter))
        n_h = cv2.connectedComponents(cv2.dilate(m, np.ones((1, k), np.uint8)))[0] - 1
        n_v = cv2.connectedComponents(cv2.dilate(m, np.ones((k, 1), np.uint8)))[0] - 1
        logs.append(math.log(max(n_v, 1) / max(n_h, 1)))
    return float(np.mean(logs))


def _skew(xs: NDArray[np.float64], ys: NDArray[np.float64], max_skew: float, refine: bool) -> float:
    """Skew of horizontal lines through the points: 1-degree search, then to 0.05 degrees."""
    limit = math.floor(max_skew)
    coarse = np.arange(-limit, limit + 1, 1.0)
    if limit < max_skew:
        coarse = np.concatenate([[-max_skew], coarse, [max_skew]])
    angle = _best_angle(xs, ys, np.asarray(coarse, np.float64))
    if refine:
        for span, step in ((1.0, 0.2), (0.2, 0.05)):
            fine = np.arange(angle - span, angle + span + step / 2, step)
            angle = _best_angle(xs, ys, np.asarray(fine[np.abs(fine) <= max_skew], np.float64))
    return round(angle, 2) + 0.0  # no -0.0


def _points(
    mask: NDArray[np.bool_], rotation: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Ink coordinates (subsampled) of ``mask`` turned ``rotation`` (0 or 90) clockwise."""
    ys_i, xs_i = np.nonzero(mask)
    if xs_i.size > _MAX_POINTS:
        step = xs_i.size // _MAX_POINTS + 1
        xs_i, ys_i = xs_i[::step], ys_i[::step]
    xs, ys = xs_i.astype(np.float64), ys_i.astype(np.float64)
    if rotation == 90:  # (x, y) -> (H - 1 - y, x)
        return (mask.shape[0] - 1) - ys, xs
    return xs, ys


def estimate_skew_and_axis(
    gray_small: NDArray[np.uint8], *, max_skew: float = 10.0, refine: bool = True
) -> AxisEstimate:
    """Find the text-line axis and skew of a small grayscale page image.

    The page is binarized (Otsu; a mostly dark page is inverted) and photos and specks are
    dropped. The axis is the direction in which smearing the ink by a fraction of the letter
    height joins the most letters into words (lines are further apart than letters, so a
    smear across them joins little; unlike a projection profile, this is not fooled by the
    aligned character columns of a monospaced receipt). The skew is the angle, within
    ``max_skew`` degrees, whose projection profile across the lines is sharpest (largest sum
    of squared differences between adjacent rows): a 1-degree search, refined to 0.05
    degrees.

    Args:
        gray_small: ``(H, W)`` ``uint8`` page, ideally about 1000 px on its long side.
        max_skew: Largest skew searched, in degrees, in ``(0, 45]``.
        refine: Refine the skew below the 1-degree coarse step.

    Returns:
        An :class:`AxisEstimate`; ``blank`` when there is too little ink.

    Raises:
        OptionsError: ``gray_small`` is not a 2-D ``uint8`` array, or ``max_skew`` is out
            of range.
    """
    if not isinstance(gray_small, np.ndarray) or gray_small.dtype != np.uint8:
        raise OptionsError("gray_small must be a uint8 numpy array")
    if gray_small.ndim != 2:
        raise OptionsError(f"gray_small must be 2-D (H, W), got shape {gray_small.shape}")
    _check_max_skew(max_skew)
    return _estimate(_ink_mask(gray_small), max_skew, refine)


def _estimate(ink: _Ink, max_skew: float, refine: bool) -> AxisEstimate:
    if ink.fraction < _MIN_INK or int(ink.mask.sum()) < 20:
        return AxisEstimate(0, 0.0, 0.0, ink.fraction, True)
    score = _axis_score(ink.mask, ink.letter)
    rotation = 0 if score >= 0 else 90
    skew = _skew(*_points(ink.mask, rotation), max_skew, refine)
    return AxisEstimate(rotation, skew, abs(score), ink.fraction, False)


# --------------------------------------------------------------------------- recognition


@dataclass(frozen=True)
class _Band:
    """One text line in the levelled analysis frame: rows ``top..bottom``, ink ``left..right``."""

    top: int
    bottom: int
    left: int
    right: int


def _frame_matrix(
    shape: tuple[int, int], rotation: int, skew: float
) -> tuple[NDArray[np.float64], tuple[int, int]]:
    """Affine map from an ``(H, W)`` image to its turned and levelled frame, and that size.

    The frame is the image turned ``rotation`` degrees clockwise, then ``skew`` degrees
    clockwise on a canvas large enough to hold all of it.
    """
    h, w = shape
    theta = math.radians(rotation + skew)  # clockwise, on screen (y down)
    c, s = math.cos(theta), math.sin(theta)
    # Clockwise on screen: x' = c x - s y, y' = s x + c y.
    rot = np.array([[c, -s], [s, c]])
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    turned = corners @ rot.T
    lo = turned.min(axis=0)
    size = np.ceil(turned.max(axis=0) - lo).astype(int)
    matrix = np.hstack([rot, -lo[:, None]])
    return matrix, (int(size[0]), int(size[1]))


def _find_bands(mask: NDArray[np.bool_], letter: float) -> list[_Band]:
    """Text-line segments of a levelled ink mask, the most promising first.

    Smearing the ink sideways by 1.2 letter heights (at least 7 px) joins the letters and
    words of a line, but neither neighbouring lines nor, mostly, the columns of a
    multi-column page, so each blob is one line of one column. Blobs of about the median
    line height (not rules or dashes, not lines merged by touching descenders) and at least
    twice as long as high are kept. They are ranked by the number of separate ink runs
    (about the letters) within what one crop can hold, so a solid bar or the edge of a
    photographed receipt, which has one run, comes last and is dropped below three.
    """
    import cv2

    if not mask.any():
        return []
    k = max(7, round(1.2 * letter)) | 1
    smeared = cv2.dilate(mask.view(np.uint8), np.ones((1, k), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(smeared, connectivity=8)
    x, y = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    w, h = stats[1:, cv2.CC_STAT_WIDTH] - (k - 1), stats[1:, cv2.CC_STAT_HEIGHT]
    lines = (w >= 2 * h) & (h >= 3)
    if not lines.any():
        return []
    median_h = float(np.median(h[lines]))
    keep = lines & (h >= 0.7 * median_h) & (h <= 1.4 * median_h)
    bands = []
    for i in np.flatnonzero(keep):
        left = int(x[i] + k // 2)
        band = _Band(int(y[i]), int(y[i] + h[i]), left, left + int(w[i]))
        reach = left + int(_CROP_ASPECT * h[i])
        cols = np.asarray(mask[band.top : band.bottom, left:reach].any(axis=0), np.int8)
        runs = int(cols[0]) + int(np.count_nonzero(np.diff(cols) == 1))
        if runs >= 3:
            bands.append((runs, band))
    bands.sort(key=lambda item: item[0], reverse=True)
    return [band for _, band in bands]


def _crop(
    pixels: NDArray[np.uint8], to_frame: NDArray[np.float64], band: _Band
) -> NDArray[np.uint8] | None:
    """One band cut from full-resolution ``pixels``, levelled, :data:`_CROP_HEIGHT` px high.

    ``to_frame`` maps ``pixels`` coordinates to the levelled analysis frame the band was
    found in. The crop is one ``warpAffine`` of the original straight to its output size, so
    the full page is never turned or copied. Grayscale; ``None`` when it would be tiny.
    """
    import cv2

    pad = 0.3 * (band.bottom - band.top)
    top, bottom = band.top - pad, band.bottom + pad
    scale = _CROP_HEIGHT / (bottom - top)
    left = band.left - pad
    width = min(_CROP_ASPECT * _CROP_HEIGHT, math.ceil((band.right + pad - left) * scale))
    if width < _CROP_HEIGHT:
        return None
    # frame -> crop is a translation then a scale; compose it with pixels -> frame.
    to_crop = np.array([[scale, 0.0, -left * scale], [0.0, scale, -top * scale]])
    matrix = np.hstack(
        [
            to_crop[:, :2] @ to_frame[:, :2],
            (to_crop[:, :2] @ to_frame[:, 2] + to_crop[:, 2])[:, None],
        ]
    )
    crop = cv2.warpAffine(
        pixels,
        matrix,
        (width, _CROP_HEIGHT),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    out: NDArray[np.uint8] = np.asarray(crop, dtype=np.uint8)
    # Slivers of the lines above and below would be read too, at a cost: paint them out.
    margin = 0.1 * (band.bottom - band.top)
    y0 = max(0, math.floor((band.top - margin - top) * scale))
    y1 = math.ceil((band.bottom + margin - top) * scale)
    x0 = max(0, math.floor((band.left - margin - left) * scale))
    paper = np.uint8(np.median(out))
    out[:y0] = paper
    out[y1:] = paper
    out[:, :x0] = paper
    return out


def _read_crops(engine: OcrEngine, crops: list[tuple[int, NDArray[np.uint8]]]) -> dict[int, float]:
    """Read labelled crops with one engine call; score per label.

    An engine with a ``read_lines(images)`` method (recognition only, such as
    :class:`~rythmiq.ocr.OnnxEngine`) reads each crop as one line: the lines are already cut
    out, so detecting them again would be wasted work (the orientation stage took 0.7 of its
    time on the dev pages at the same rotations). Any other engine gets the crops stacked
    into one image, and each line it returns is credited to the crop its box centre falls in.
    """
    read_lines = getattr(engine, "read_lines", None)
    if callable(read_lines):
        scores = dict.fromkeys((label for label, _ in crops), 0.0)
        read = read_lines([crop for _, crop in crops])
        for (label, _), (text, confidence) in zip(crops, read, strict=True):
            scores[label] += _line_score(text, confidence)
        return scores
    # One width for every composite: an engine backed by oneDNN (PaddleOCR) builds its
    # kernels per input shape, and a new shape per page cost 0.1-0.4 s on one core.
    width = _CROP_HEIGHT * _CROP_ASPECT + 2 * _GAP
    pitch = _CROP_HEIGHT + _GAP
    out = np.full((len(crops) * pitch + _GAP, width), 255, dtype=np.uint8)
    for i, (_, crop) in enumerate(crops):
        y = _GAP + i * pitch
        out[y : y + _CROP_HEIGHT, _GAP : _GAP + crop.shape[1]] = crop
    scores = {label: 0.0 for label, _ in crops}
    for line in engine.recognize(out).lines:
        _, top, _, bottom = line.bbox
        i = int(((top + bottom) / 2 - _GAP / 2) // pitch)
        if 0 <= i < len(crops):
            scores[crops[i][0]] += _line_score(line.text, line.confidence)
    return scores


def _line_score(text: str, confidence: float) -> float:
    """Evidence that a line was read the right way up: confident letters and digits.

    ``confidence**2`` times the count of letters and digits; squaring keeps the
    half-confident guesses a recognizer makes on upside-down text from adding up.
    """
    return float(confidence) ** 2 * sum(ch.isalnum() for ch in text)


# --------------------------------------------------------------------------- public API


def _check_pixels(pixels: object, name: str = "pixels") -> NDArray[np.uint8]:
    if not isinstance(pixels, np.ndarray):
        raise OptionsError(f"{name} must be a numpy array, got {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise OptionsError(f"{name} must have dtype uint8, got {pixels.dtype}")
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3)):
        raise OptionsError(f"{name} must be (H, W) or (H, W, 3), got shape {pixels.shape}")
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise OptionsError(f"{name} is empty (shape {pixels.shape})")
    return pixels


def _check_max_skew(max_skew: float) -> None:
    if isinstance(max_skew, bool) or not isinstance(max_skew, int | float):
        raise OptionsError(f"max_skew must be a number in (0, 45], got {max_skew!r}")
    if not 0 < max_skew <= 45:
        raise OptionsError(f"max_skew must be in (0, 45], got {max_skew!r}")


def _small_gray(pixels: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], float]:
    """The page shrunk to :data:`ANALYSIS_SIZE` on its long side (never enlarged), and the scale."""
    import cv2

    h, w = pixels.shape[:2]
    scale = min(1.0, ANALYSIS_SIZE / max(h, w))
    small = pixels
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), np.uint8)
    if small.ndim == 3:
        small = np.asarray(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), np.uint8)
    return np.ascontiguousarray(small), scale


def detect_orientation(
    pixels: NDArray[np.uint8],
    engine: OcrEngine,
    *,
    max_skew: float = 10.0,
    detect_skew: bool = True,
) -> Orientation:
    """Find how ``pixels`` must be turned to be upright, and its residual skew.

    The line axis and skew come from :func:`estimate_skew_and_axis` on a copy 1000 px on its
    long side. Text lines are then cut from the full-resolution page, levelled and scaled to
    40 px high (at most 480 px long), and each crop goes with its copy turned 180 degrees.
    An engine with ``read_lines`` (the default :class:`~rythmiq.ocr.OnnxEngine`) reads them
    as lines, recognition only; any other engine gets them stacked into one small image
    (512 px wide, whatever the page, so an engine that builds kernels per input shape reuses
    them) that ``engine.recognize`` reads in one call. Each
    way up scores ``confidence**2`` times the letters and digits read in its crops. Rounds of 1,
    2 and 3 more lines are read until one way up has a score of at least 8 and three times
    any other; usually the first round (one line, an image of about 0.07 Mpx) decides. The
    reading that keeps the profile's axis unturned wins unless beaten by 25 %. When the
    axis itself is unclear, crops for both axes go into each round.

    The cost is the analysis (tens of ms) plus one to three engine calls on small images,
    independent of the page size.

    Args:
        pixels: ``(H, W)`` or ``(H, W, 3)`` ``uint8`` page.
        engine: Any :class:`~rythmiq.ocr.OcrEngine`; its ``read_lines`` is used when it has
            one, else ``recognize``.
        max_skew: Largest skew searched, in degrees, in ``(0, 45]``.
        detect_skew: When ``False``, the reported skew is ``0.0`` (it is still measured
            coarsely, to cut straight line crops).

    Returns:
        An :class:`Orientation`. A blank page, or one where nothing could be read either way
        up, gets ``rotation == 0``; this never raises for odd page content.

    Raises:
        OptionsError: ``pixels`` is not a 2-D/3-D ``uint8`` array, or ``max_skew`` is not in
            ``(0, 45]``.
    """
    pixels = _check_pixels(pixels)
    _check_max_skew(max_skew)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    small, scale = _small_gray(pixels)
    ink = _ink_mask(small)
    axis = _estimate(ink, max_skew, detect_skew)
    if axis.blank:
        return Orientation(0, 0.0, 0.0, "blank")
    skews = {axis.rotation: axis.skew}
    if axis.axis_margin < _AXIS_AMBIGUOUS:
        other = 90 - axis.rotation
        skews[other] = _skew(*_points(ink.mask, other), max_skew, detect_skew)
    scores = _read_rounds(pixels, engine, _line_queues(ink, scale, skews))
    if max(scores.values()) <= 0:
        return Orientation(0, 0.0, 0.0, "unreadable")
    prior = {axis.rotation: _PRIOR}
    best = max(scores, key=lambda r: scores[r] * prior.get(r, 1.0))
    other_score = max(v for r, v in scores.items() if r != best)
    confidence = min(1.0, max(0.0, 1.0 - other_score / scores[best])) if scores[best] else 0.0
    skew = skews[best % 180] if detect_skew else 0.0
    return Orientation(best, float(skew), float(confidence), "profile+recognition")


def _line_queues(
    ink: _Ink, scale: float, skews: dict[int, float]
) -> dict[int, tuple[NDArray[np.float64], list[_Band]]]:
    """For each candidate axis: the full-resolution-to-levelled-frame matrix, and the text
    line bands found in the levelled ink mask, in reading order."""
    queues: dict[int, tuple[NDArray[np.float64], list[_Band]]] = {}
    for base, base_skew in skews.items():
        to_frame, _ = _frame_matrix(ink.mask.shape, base, base_skew)
        # Full resolution -> small -> levelled frame.
        full_to_frame = np.hstack([to_frame[:, :2] * scale, to_frame[:, 2:]])
        queues[base] = (
            full_to_frame,
            _find_bands(_levelled(ink.mask, base, base_skew), ink.letter),
        )
    return queues


def _read_rounds(
    pixels: NDArray[np.uint8],
    engine: OcrEngine,
    queues: dict[int, tuple[NDArray[np.float64], list[_Band]]],
) -> dict[int, float]:
    """Score each way up over rounds of 1, 2 and 3 more line crops per axis, until one way
    is decisive or no line is left (see :func:`detect_orientation`)."""
    scores = {r: 0.0 for base in queues for r in (base, base + 180)}
    for n in _ROUNDS:
        crops: list[tuple[int, NDArray[np.uint8]]] = []
        for base, (full_to_frame, bands) in queues.items():
            while bands and sum(1 for r, _ in crops if r == base) < n:
                crop = _crop(pixels, full_to_frame, bands.pop(0))
                if crop is not None:
                    crops += [(base, crop), (base + 180, np.rot90(crop, 2))]
        if not crops:
            break
        for label, value in _read_crops(engine, crops).items():
            scores[label] += value
        ranked = sorted(scores.values(), reverse=True)
        if ranked[0] >= _DECISIVE_SCORE and ranked[0] >= _DECISIVE_RATIO * ranked[1]:
            break
    return scores


def _levelled(mask: NDArray[np.bool_], rotation: int, skew: float) -> NDArray[np.bool_]:
    """``mask`` turned ``rotation + skew`` degrees clockwise on an expanded canvas."""
    import cv2

    to_frame, size = _frame_matrix(mask.shape, rotation, skew)
    out = cv2.warpAffine(mask.view(np.uint8), to_frame, size, flags=cv2.INTER_NEAREST)
    return out.astype(bool)


def apply_orientation(
    pixels: NDArray[np.uint8], orientation: Orientation, *, deskew_threshold: float = 1.0
) -> NDArray[np.uint8]:
    """Turn ``pixels`` upright as ``orientation`` says.

    The quarter turn is exact (``np.rot90``, no resampling). A skew of at least
    ``deskew_threshold`` degrees is then removed by turning the page ``skew`` degrees
    clockwise with bicubic interpolation, on a canvas enlarged so no content is cut off; the
    new corners are filled with the page background (the median of the border pixels).

    The default threshold is 1 degree because the engines read a line tilted by less just as
    well, while resampling blurs small print (measured on the dev receipts: see
    ``docs/benchmarks.md``, "Orientation").

    Args:
        pixels: ``(H, W)`` or ``(H, W, 3)`` ``uint8`` page.
        orientation: From :func:`detect_orientation`, or built by hand.
        deskew_threshold: Smallest ``|skew|`` in degrees that is corrected; ``0`` corrects
            any skew.

    Returns:
        A new array with the same dtype and number of channels.

    Raises:
        OptionsError: ``pixels`` is not a 2-D/3-D ``uint8`` array, the rotation is not a
            multiple of 90, or ``deskew_threshold`` is negative.
    """
    pixels = _check_pixels(pixels)
    if orientation.rotation not in (0, 90, 180, 270):
        raise OptionsError(f"rotation must be 0, 90, 180 or 270, got {orientation.rotation!r}")
    if not deskew_threshold >= 0:
        raise OptionsError(f"deskew_threshold must be >= 0, got {deskew_threshold!r}")
    out = np.ascontiguousarray(np.rot90(pixels, k=-(orientation.rotation // 90)))
    skew = float(orientation.skew)
    if not math.isfinite(skew) or abs(skew) < max(deskew_threshold, 1e-6):
        return out.copy() if np.may_share_memory(out, pixels) else out
    import cv2

    matrix, size = _frame_matrix(out.shape[:2], 0, skew)
    edge = (out[0], out[-1], out[:, 0], out[:, -1])
    border = np.concatenate([e.reshape(-1, *out.shape[2:]) for e in edge])
    fill = np.median(border, axis=0)
    value = tuple(float(v) for v in np.atleast_1d(fill))
    turned = cv2.warpAffine(
        out,
        matrix,
        size,
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=value * (3 if len(value) == 1 else 1),
    )
    return np.asarray(turned, dtype=np.uint8).reshape(size[1], size[0], *pixels.shape[2:])
