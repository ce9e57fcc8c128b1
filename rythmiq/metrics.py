"""Text accuracy metrics for OCR evaluation: bag-of-words F1 and character error rate."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

__all__ = ["cer", "normalize_words", "word_f1"]

_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_words(text: str, *, casefold: bool = True) -> list[str]:
    """Split ``text`` into word tokens (runs of letters and digits), NFKC-normalised.

    Punctuation is dropped, so ``"TOTAL:"`` and ``"TOTAL"`` are the same word.
    """
    text = unicodedata.normalize("NFKC", text)
    if casefold:
        text = text.casefold()
    return _WORD.findall(text)


def word_f1(predicted: str, reference: str, *, casefold: bool = True) -> float:
    """Bag-of-words F1 between two texts; order-insensitive, counts repeated words.

    Two empty texts score 1.0; one empty text scores 0.0.
    """
    pred = Counter(normalize_words(predicted, casefold=casefold))
    ref = Counter(normalize_words(reference, casefold=casefold))
    if not pred and not ref:
        return 1.0
    if not pred or not ref:
        return 0.0
    overlap = sum((pred & ref).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(pred.values())
    recall = overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def cer(predicted: str, reference: str) -> float:
    """Character error rate: Levenshtein distance / reference length, whitespace collapsed.

    An empty reference gives 0.0 for an empty prediction and 1.0 otherwise.
    """
    p = " ".join(predicted.split())
    r = " ".join(reference.split())
    if not r:
        return 0.0 if not p else 1.0
    prev = list(range(len(p) + 1))
    for i, rc in enumerate(r, start=1):
        cur = [i] + [0] * len(p)
        for j, pc in enumerate(p, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rc != pc))
        prev = cur
    return prev[-1] / len(r)
