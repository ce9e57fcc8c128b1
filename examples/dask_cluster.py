"""Process a folder of scans on a Dask cluster with rythmiq.

Runs on a LocalCluster of 2 worker processes (one OCR thread each) by default; pass
``--scheduler tcp://host:8786`` to use a running cluster instead (its workers need
``pip install "rythmiq[dask]"`` and must be able to read the inputs: a shared folder or
s3:// URLs). Each Dask worker loads the OCR engine once.

    python examples/dask_cluster.py examples/data            # a folder, a file, or URLs
    python examples/dask_cluster.py s3://bucket/input/a.jpg --scheduler tcp://10.0.0.5:8786
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distributed import Client, LocalCluster

import rythmiq
from rythmiq.dask import process_on_cluster

IMAGES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}


def expand(args: list[str]) -> list[str]:
    """Files as given, folders searched for images, URLs kept."""
    found: list[str] = []
    for arg in args:
        path = Path(arg)
        if "://" in arg:
            found.append(arg)
        elif path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGES)
        else:
            found.append(str(path.resolve()))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="image files, folders or URLs")
    ap.add_argument("--scheduler", help="address of a running Dask scheduler")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    args = ap.parse_args()

    sources = expand(args.inputs)
    if not sources:
        print("no images found", file=sys.stderr)
        return 2
    options = rythmiq.ProcessOptions(threads=1)  # one OCR thread per single-threaded worker
    if args.scheduler:
        client, cluster = Client(args.scheduler), None
    else:
        cluster = LocalCluster(
            processes=True, n_workers=args.workers, threads_per_worker=1, dashboard_address=":0"
        )
        client = Client(cluster)
    failed = 0
    try:
        for item in process_on_cluster(client, sources, options=options, ordered=True):
            if not item.ok:
                failed += 1
                print(f"{item.source}: FAILED {item.error}")
                continue
            r = item.result
            text = r.ocr.text.splitlines()[0] if r.ocr and r.ocr.text else ""
            print(
                f"{item.source}: quality {r.quality.score:.2f} "
                f"{'PASS' if r.quality.passed else 'FAIL'}, {len(r.ocr.lines) if r.ocr else 0} "
                f"lines, worker {item.worker_pid}, first line: {text!r}"
            )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 3 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
