"""Process every image in a folder on all cores; write one JSON line per document.

    python examples/batch_folder.py scans/ results.jsonl [--workers 2]

Each worker process loads the OCR engine once. A bad file is reported in its JSON line
(``"ok": false`` with a typed error code) and the others go on. On a terminal, a tqdm progress
bar (rythmiq's own CLI uses the same) shows the count, docs/s and the time left.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

import rythmiq

IMAGES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("output", type=Path, help="JSON lines file to write")
    ap.add_argument("--workers", type=int, help="worker processes (default: usable cores)")
    args = ap.parse_args()

    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in IMAGES)
    if not paths:
        print(f"no images in {args.folder}", file=sys.stderr)
        return 2

    last: list[rythmiq.BatchProgress] = []
    failed = 0
    # disable=None: the bar shows only when stderr is a terminal, never in a log file.
    with args.output.open("w") as out, tqdm(total=len(paths), unit="doc", disable=None) as bar:

        def progress(p: rythmiq.BatchProgress) -> None:
            bar.update(p.done - bar.n)
            last[:] = [p]

        for item in rythmiq.process_many(
            paths, workers=args.workers, ordered=True, on_progress=progress
        ):
            failed += not item.ok
            out.write(json.dumps(item.to_dict()) + "\n")
    rate = f", {last[0].docs_per_s:.2f} docs/s" if last else ""
    print(f"{len(paths) - failed} ok, {failed} failed{rate} -> {args.output}", file=sys.stderr)
    return 3 if failed else 0


if __name__ == "__main__":  # needed: the workers are spawned processes
    raise SystemExit(main())
