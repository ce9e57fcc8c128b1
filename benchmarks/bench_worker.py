"""Worker benchmark: the original Camber latency table, reproduced locally.

For payloads of 1, 10 and 50 documents it runs `python -m rythmiq.worker` as a fresh process
(as a Camber job does, without the pip install) against a local folder store, and prints
start-up (interpreter -> rythmiq imported -> engine ready), cold (first) and warm (later)
document times, and efficiency = document processing time / job wall time, all from the job
result's own accounting.

    python benchmarks/bench_worker.py [--sizes 1 10 50] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _dev import dev_pages

HERE = Path(__file__).resolve().parent


def inputs() -> list[bytes]:
    """Encoded input documents: the dev receipts when present, else rendered pages."""
    pages = [p for p, _ in dev_pages() if p.stem.startswith("sroie_")]
    if pages:
        return [p.read_bytes() for p in pages]
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import render_page
    from PIL import Image

    out = []
    for size in (28, 32, 36, 40):
        buf = io.BytesIO()
        Image.fromarray(render_page(width=1240, height=1754, font_size=size)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", type=int, default=[1, 10, 50])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    from rythmiq.keyring import Keyring

    docs = inputs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        (store / "input").mkdir(parents=True)
        for i, data in enumerate(docs):
            (store / "input" / f"doc{i}.jpg").write_bytes(data)
        env = dict(os.environ)
        keyring = Keyring.generate("bench")
        env["RYTHMIQ_KEYRING"] = base64.b64encode(keyring.to_json().encode()).decode()
        for n in args.sizes:
            payload = {
                "version": 1,
                "job_id": f"bench-{n}",
                "user_id": "bench",
                "documents": [
                    {"document_id": f"d{i}", "input": f"input/doc{i % len(docs)}.jpg"}
                    for i in range(n)
                ],
                "options": {"threads": args.threads},
                "output": str(store),
            }
            out = subprocess.run(
                [sys.executable, "-m", "rythmiq.worker"],
                input=json.dumps(payload).encode(),
                capture_output=True,
                env=env,
                check=False,
            )
            job = json.loads(out.stdout)
            if out.returncode != 0:
                print(out.stderr.decode()[-2000:], file=sys.stderr)
                raise SystemExit(f"worker failed with {out.returncode}: {job.get('error')}")
            acct = job["accounting"]
            walls = [d["wall_s"] for d in job["documents"]]
            row = {
                "documents": n,
                "startup_s": acct["startup"]["total_s"],
                "process_to_import_s": acct["startup"]["process_to_rythmiq_imported_s"],
                "import_to_engine_s": acct["startup"]["rythmiq_imported_to_engine_ready_s"],
                "cold_doc_s": walls[0],
                "warm_doc_median_s": statistics.median(walls[1:]) if n > 1 else None,
                "doc_median_s": statistics.median(walls),
                "job_wall_s": acct["job"]["wall_s"],
                "job_cpu_s": acct["job"]["cpu_s"],
                "peak_rss_mb": acct["peak_rss_mb"],
                "efficiency": acct["efficiency"],
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

    print(
        f"{'docs':>5s} {'startup s':>10s} {'cold doc s':>11s} {'warm doc s':>11s} "
        f"{'job wall s':>11s} {'peak RSS MB':>12s} {'efficiency':>11s}"
    )
    for r in rows:
        warm = f"{r['warm_doc_median_s']:.2f}" if r["warm_doc_median_s"] is not None else "-"
        print(
            f"{r['documents']:5d} {r['startup_s']:10.2f} {r['cold_doc_s']:11.2f} {warm:>11s} "
            f"{r['job_wall_s']:11.2f} {r['peak_rss_mb']:12.0f} {r['efficiency']:11.1%}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
