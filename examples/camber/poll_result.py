"""Wait for a rythmiq worker job to finish by polling its store for result.json.

Camber has no webhooks and a job's stdout is only a log, so the job result is read from the
store: the worker writes ``output/{user_id}/{job_id}/result.json`` last. A job that dies
before that never writes it, hence the deadline (check ``camber job get`` too).

    python examples/camber/poll_result.py payload.json [--timeout 1800] [--interval 15]

Store settings and credentials come from the environment (RYTHMIQ_S3_ENDPOINT, SPACES_KEY,
SPACES_SECRET...). Exit code: 0 when the job's status is ok, 3 partial, 1 otherwise, 124 on
timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import rythmiq
from rythmiq.layout import artifact_key


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("payload", type=Path, help="the payload the job was started with")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait")
    ap.add_argument("--interval", type=float, default=15, help="seconds between polls")
    args = ap.parse_args()

    payload = json.loads(args.payload.read_text())
    store = rythmiq.Store.open(payload["output"])
    ids = rythmiq.Ids(payload["user_id"], payload["job_id"], "job")
    marker = artifact_key("result", ids)  # output/{user_id}/{job_id}/result.json
    deadline = time.monotonic() + args.timeout
    while not store.exists(marker):
        if time.monotonic() > deadline:
            print(f"no {store.url_for(marker)} after {args.timeout:g} s", file=sys.stderr)
            return 124
        time.sleep(args.interval)

    job = json.loads(store.read(marker))
    print(f"job {job['job_id']}: {job['status']} (exit code {job['exit_code']})")
    for doc in job.get("documents", []):
        line = f"  {doc['document_id']}: {doc['status']}"
        if doc["status"] == "ok":
            quality = min(page["quality"]["score"] for page in doc["pages"])
            line += f", quality {quality:.2f}"
            if doc["page_count"] > 1:
                line += f" (lowest of {doc['page_count']} pages)"
        elif "error" in doc:
            line += f", {doc['error']['code']}: {doc['error']['message']}"
        print(line)
    return {"ok": 0, "partial": 3}.get(job["status"], 1)


if __name__ == "__main__":
    raise SystemExit(main())
