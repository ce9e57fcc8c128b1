"""Shared helpers for benchmarks: locate the dev data set and load its manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEV = Path(os.environ.get("RYTHMIQ_DEV_DATA", HERE.parent.parent / "shared" / "data" / "dev"))


def dev_pages(names: list[str] | None = None) -> list[tuple[Path, str]]:
    """``(image path, ground-truth text)`` of the dev OCR pages; empty when absent."""
    manifest = DEV / "ocr" / "manifest.jsonl"
    if not manifest.is_file():
        return []
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    out = [(DEV / "ocr" / r["image"], r["text"]) for r in rows]
    if names:
        out = [(p, t) for p, t in out if p.stem in names]
    return out
