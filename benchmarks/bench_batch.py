"""Batch benchmark: process_many at 1 and 2 workers, Dask against process_many, an RSS soak.

Every figure of one section is measured side by side in one run, on the same documents:

* throughput (docs/s) of ``process_many`` with 1 and 2 worker processes (one OCR thread
  each), the scaling 2 vs 1, and each worker's peak RSS;
* the same documents through ``rythmiq.dask.process_on_cluster`` on a
  ``LocalCluster(processes=True, n_workers=2, threads_per_worker=1)``: Dask / process_many;
* ``--soak N``: N documents through 2 workers that are never recycled, with the RSS of each
  worker after every document; drift = mean RSS of a worker's last 25 documents over the
  mean of its documents 26-50 (the first 25 are warm-up), minus 1.

Inputs are the dev receipts (``../shared/data/dev/ocr/sroie_*``), cycled; rendered pages
when the dev data is absent. Wall times include starting the workers and loading their
engines; "steady" throughput counts from the moment every worker has finished a document.

    python benchmarks/bench_batch.py [--docs 22] [--soak 300] [--no-dask] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _dev import dev_pages

HERE = Path(__file__).resolve().parent


def inputs(folder: Path, n: int) -> list[str]:
    """``n`` input files: the dev receipts cycled, else rendered pages."""
    pages = [p for p, _ in dev_pages() if p.stem.startswith("sroie_")]
    if not pages:
        sys.path.insert(0, str(HERE.parent / "tests"))
        from conftest import render_page
        from PIL import Image

        for i in range(4):
            path = folder / f"rendered-{i}.png"
            Image.fromarray(render_page(font_size=30 + 4 * i)).save(path)
            pages.append(path)
    return [str(pages[i % len(pages)]) for i in range(n)]


def summarize(label: str, results: list[Any], t0: float, times: list[float]) -> dict[str, Any]:
    wall = times[-1] - t0
    pids: dict[int, list[Any]] = defaultdict(list)
    for r, t in zip(results, times, strict=True):
        pids[r.worker_pid].append((r, t))
    first_each = max(items[0][1] for items in pids.values())
    after = sum(1 for t in times if t > first_each)
    steady = after / (times[-1] - first_each) if times[-1] > first_each else float("nan")
    peaks = {pid: max(r.worker_peak_rss_mb or 0 for r, _ in items) for pid, items in pids.items()}
    failed = [r for r in results if not r.ok]
    return {
        "label": label,
        "docs": len(results),
        "failed": len(failed),
        "wall_s": round(wall, 2),
        "docs_per_s": round(len(results) / wall, 4),
        "steady_docs_per_s": round(steady, 4),
        "first_result_s": round(times[0] - t0, 2),
        "worker_peak_rss_mb": sorted(peaks.values()),
        "median_doc_s": round(statistics.median(r.wall_s for r in results), 3),
    }


def run_pool(sources: list[str], workers: int, **kw: Any) -> tuple[list[Any], float, list[float]]:
    from rythmiq import ProcessOptions, process_many

    t0 = time.perf_counter()
    results, times = [], []
    for item in process_many(sources, options=ProcessOptions(threads=1), workers=workers, **kw):
        results.append(item)
        times.append(time.perf_counter())
    return results, t0, times


def run_dask(sources: list[str]) -> tuple[list[Any], float, list[float]]:
    from distributed import Client, LocalCluster

    from rythmiq import ProcessOptions
    from rythmiq.dask import process_on_cluster

    with (
        LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        t0 = time.perf_counter()  # plugin set-up (engine load) is inside, cluster start is not
        results, times = [], []
        for item in process_on_cluster(client, sources, options=ProcessOptions(threads=1)):
            results.append(item)
            times.append(time.perf_counter())
    return results, t0, times


def soak(sources: list[str]) -> dict[str, Any]:
    results, _, _ = run_pool(sources, 2, max_docs_per_worker=None)
    per_pid: dict[int, list[float]] = defaultdict(list)
    for r in results:  # in completion order, so each worker's list is in its own order
        per_pid[r.worker_pid].append(r.worker_rss_mb)
    workers = []
    for pid, rss in per_pid.items():
        warm = statistics.mean(rss[25:50]) if len(rss) >= 50 else float("nan")
        last = statistics.mean(rss[-25:])
        workers.append(
            {
                "pid": pid,
                "docs": len(rss),
                "rss_mb_at": {n: rss[n - 1] for n in (1, 10, 25, 50, 100, 150) if n <= len(rss)},
                "rss_mb_last": rss[-1],
                "drift_pct": round(100 * (last / warm - 1), 2),
            }
        )
    return {"docs": len(results), "failed": sum(not r.ok for r in results), "workers": workers}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=22, help="documents per throughput run")
    ap.add_argument("--soak", type=int, default=0, help="documents in the RSS soak (e.g. 300)")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask comparison")
    ap.add_argument("--no-throughput", action="store_true", help="only the soak")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_throughput:
            sources = inputs(Path(tmp), args.docs)
            one = summarize("process_many 1 worker", *run_pool(sources, 1))
            two = summarize("process_many 2 workers", *run_pool(sources, 2))
            rows = [one, two]
            report["scaling_2_vs_1"] = round(two["docs_per_s"] / one["docs_per_s"], 3)
            report["steady_scaling_2_vs_1"] = round(
                two["steady_docs_per_s"] / one["steady_docs_per_s"], 3
            )
            if not args.no_dask:
                dask = summarize("dask LocalCluster 2x1", *run_dask(sources))
                rows.append(dask)
                report["dask_over_process_many_wall"] = round(dask["wall_s"] / two["wall_s"], 3)
            report["throughput"] = rows
            print(f"{len(sources)} documents, 1 OCR thread per worker")
            print(
                f"{'run':<26} {'wall s':>7} {'docs/s':>7} {'steady':>7} {'1st s':>6} "
                f"{'doc s':>6}  peak RSS MB per worker"
            )
            for r in rows:
                print(
                    f"{r['label']:<26} {r['wall_s']:>7.1f} {r['docs_per_s']:>7.3f} "
                    f"{r['steady_docs_per_s']:>7.3f} {r['first_result_s']:>6.1f} "
                    f"{r['median_doc_s']:>6.2f}  {r['worker_peak_rss_mb']}"
                )
            print(
                f"scaling 2 vs 1 workers: {report['scaling_2_vs_1']:.3f} "
                f"(steady {report['steady_scaling_2_vs_1']:.3f})"
            )
            if "dask_over_process_many_wall" in report:
                print(
                    "Dask / process_many wall (2 workers): "
                    f"{report['dask_over_process_many_wall']:.3f}"
                )
        if args.soak:
            report["soak"] = s = soak(inputs(Path(tmp), args.soak))
            print(f"soak: {s['docs']} documents, 2 workers never recycled, {s['failed']} failed")
            for w in s["workers"]:
                print(
                    f"  worker {w['pid']}: {w['docs']} docs, RSS MB at doc {w['rss_mb_at']}, "
                    f"last {w['rss_mb_last']}, drift after warm-up {w['drift_pct']:+.2f} %"
                )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
