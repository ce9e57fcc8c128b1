"""Cold-start benchmark: a Camber base-engine job simulated on this machine, four ways.

Each job runs its exact command as a subprocess in a fresh folder that holds only the stash
contents, with a fresh Python 3.11 environment that has no rythmiq (a new venv of the base
interpreter, made before the clock starts), a clean HOME and a clean TMPDIR:

- (a) ``pip install`` of the rythmiq wheel with its dependencies from the package index,
  then the worker: the original way (the index here is a fast local mirror; on Camber the
  install took 40-55 s);
- (b) the same from a wheelhouse folder in the stash (``--no-index --find-links``);
- (c) the runtime bundle, cold: ``python3 -s rythmiq-launch.py <bundle> worker ...`` with an
  empty TMPDIR;
- (d) the bundle, warm: the same with the TMPDIR of an earlier job on the same node.

For 1, 10 and 100 documents (receipts from the dev set when present, else rendered pages)
it prints job wall time, set-up (install or unpack), start-up (worker start to engine ready),
job start to the first document starting, per-document time and efficiency (documents'
processing time / job wall), all side by side from one run. Then it runs ten cold bundle jobs
in a row and counts the successes. Between cold runs it drops the page cache when it can
(root, /proc/sys/vm/drop_caches writable) and says so when it cannot.

    python benchmarks/bench_coldstart.py [--sizes 1 10 100] [--paths a b c d] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_worker import inputs

from rythmiq.bundle import _rythmiq_wheel, build_bundle
from rythmiq.keyring import Keyring

HERE = Path(__file__).resolve().parent
PATHS = {
    "a": "pip install (index)",
    "b": "pip install (wheelhouse)",
    "c": "bundle, cold",
    "d": "bundle, warm",
}
KEYRING = Keyring.generate("k-coldstart")


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def fresh_python(base: str, where: Path) -> Path:
    """A new venv of ``base``: a Python with pip and nothing else, like a bare job image."""
    subprocess.run([base, "-m", "venv", str(where)], check=True, capture_output=True)
    return where / "bin" / "python"


def make_store(root: Path, docs: list[bytes], n: int) -> dict:
    (root / "input").mkdir(parents=True)
    entries = []
    for i in range(n):
        data = docs[i % len(docs)]
        ext = "jpg" if data[:2] == b"\xff\xd8" else "png"
        name = f"doc-{i:03d}.{ext}"
        (root / "input" / name).write_bytes(data)
        entries.append({"document_id": f"doc-{i:03d}", "input": f"input/{name}"})
    return {
        "version": 1,
        "job_id": "coldstart",
        "user_id": "bench",
        "documents": entries,
        "output": str(root),
    }


def run_job(path: str, n: int, art: dict, work: Path, warm_tmp: Path | None) -> dict:
    run = Path(tempfile.mkdtemp(prefix=f"job-{path}-{n}-", dir=work))
    stash, home = run / "stash", run / "home"
    stash.mkdir()
    home.mkdir()
    tmpdir = warm_tmp if warm_tmp is not None else run / "tmp"
    tmpdir.mkdir(exist_ok=True)
    payload = make_store(run / "store", art["docs"], n)
    (stash / "payload.json").write_text(json.dumps(payload))
    python = fresh_python(art["base"], run / "python")
    worker = f"{python} -m rythmiq.worker --payload payload.json"
    if path == "a":
        shutil.copy(art["wheel"], stash)
        setup = f"{python} -m pip install --quiet --no-warn-script-location ./{art['wheel'].name}"
    elif path == "b":
        shutil.copytree(art["wheelhouse"], stash / "wheels")
        setup = (
            f"{python} -m pip install --quiet --no-warn-script-location --no-index "
            f"--find-links wheels rythmiq"
        )
    else:
        shutil.copy(art["bundle"], stash)
        shutil.copy(art["launcher"], stash)
        setup = None
        worker = f"{python} -s rythmiq-launch.py {art['bundle'].name} worker --payload payload.json"
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "RYTHMIQ_KEYRING": base64.b64encode(KEYRING.to_json().encode()).decode(),
    }
    # The machine's own package-index settings (its mirror, CA bundle), as a job would have.
    env.update({k: v for k, v in os.environ.items() if k.startswith(("PIP_", "SSL_CERT"))})
    if path in ("a", "b"):
        env.pop("PIP_FIND_LINKS", None)  # a job has no local wheel folder but the stash's
    dropped = drop_caches() if path != "d" else None
    t0 = time.perf_counter()
    setup_s = 0.0
    if setup is not None:
        s = subprocess.run(setup, shell=True, cwd=stash, env=env, capture_output=True, text=True)
        setup_s = time.perf_counter() - t0
        if s.returncode != 0:
            return {"path": path, "n": n, "ok": False, "error": s.stderr[-1500:]}
    proc = subprocess.run(worker, shell=True, cwd=stash, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = {"path": path, "n": n, "wall_s": wall, "page_cache_dropped": dropped}
    try:
        job = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {**out, "ok": False, "error": proc.stderr[-1500:]}
    acc = job.get("accounting", {})
    ok = proc.returncode == 0 and job.get("status") == "ok"
    unpack = re.search(r"bundle \S+ (unpacked|reused) in ([0-9.]+) s", proc.stderr)
    if path in ("c", "d"):
        setup_s = float(unpack.group(2)) if unpack else float("nan")
        # The launcher execs the worker: its process start is the job's start.
        startup = acc["startup"]["total_s"] - setup_s
        first_doc = acc["startup"]["total_s"]
    else:
        startup = acc["startup"]["total_s"]
        first_doc = setup_s + startup
    docs_wall = acc["documents"]["wall_s"]
    out.update(
        ok=ok,
        setup_s=setup_s,
        startup_s=startup,
        first_document_s=first_doc,
        per_document_s=docs_wall / n,
        efficiency=docs_wall / wall,
        peak_rss_mb=acc.get("peak_rss_mb"),
        stash_untouched=sorted(p.name for p in stash.iterdir()),
    )
    if not ok:
        out["error"] = (job.get("error"), proc.stderr[-1500:])
    if path != "c":
        shutil.rmtree(run, ignore_errors=True)
    else:
        out["tmpdir"] = str(tmpdir)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", type=int, default=[1, 10, 100])
    ap.add_argument("--paths", nargs="*", default=list(PATHS), choices=list(PATHS))
    ap.add_argument("--cold-runs", type=int, default=10, help="cold bundle jobs in a row")
    ap.add_argument(
        "--python",
        default=getattr(sys, "_base_executable", sys.executable),
        help="base interpreter of each job's fresh Python 3.11 (default: this one's base)",
    )
    ap.add_argument("--work", type=Path, help="work folder (default: a new temporary one)")
    ap.add_argument("--json", type=Path, help="write the rows as JSON")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="rythmiq-coldstart-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}; base python {args.python}", flush=True)
    art: dict = {"base": args.python, "docs": inputs()}
    art["wheel"] = _rythmiq_wheel(work)
    if "b" in args.paths:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--dest",
                str(work / "wheels"),
                "--only-binary=:all:",
                str(art["wheel"]),
            ],
            check=True,
        )
        art["wheelhouse"] = work / "wheels"
    if {"c", "d"} & set(args.paths):
        t = time.perf_counter()
        built = build_bundle(work / "bundle")
        print(
            f"bundle {built.path.name}: {built.size / 2**20:.1f} MiB packed, "
            f"{built.unpacked_size / 2**20:.0f} MiB unpacked, {built.files} files, "
            f"built in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        art["bundle"], art["launcher"] = built.path, built.launcher
        art["bundle_mib"] = built.size / 2**20
    if not drop_caches():
        print(
            "note: cannot drop the page cache here (needs root and a writable "
            "/proc/sys/vm/drop_caches); cold runs read the bundle from a warm cache"
        )

    rows = []
    for n in args.sizes:
        warm_tmp = None
        for path in args.paths:
            if path == "d" and warm_tmp is None:
                # A warm node: the bundle unpacked by an earlier job (not timed).
                seed = run_job("c", 1, art, work, None)
                warm_tmp = Path(seed["tmpdir"])
            row = run_job(path, n, art, work, warm_tmp if path == "d" else None)
            if path == "c" and row.get("tmpdir"):
                warm_tmp = warm_tmp or Path(row["tmpdir"])
            rows.append(row)
            status = "ok" if row["ok"] else f"FAILED {row.get('error')}"
            wall = row.get("wall_s", 0.0)
            print(f"  {n:>3} docs  ({path}) {PATHS[path]:<26} {wall:7.2f} s  {status}", flush=True)

    print(
        "\n| docs | path | job wall s | set-up s | start-up s | job start to 1st doc s | "
        "s/doc | efficiency | vs (a) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        base = next((r for r in rows if r["n"] == n and r["path"] == "a" and r["ok"]), None)
        for r in (r for r in rows if r["n"] == n):
            if not r["ok"]:
                print(f"| {n} | ({r['path']}) {PATHS[r['path']]} | failed | | | | | | |")
                continue
            ratio = f"{r['wall_s'] / base['wall_s']:.2f}" if base else "-"
            print(
                f"| {n} | ({r['path']}) {PATHS[r['path']]} | {r['wall_s']:.2f} | "
                f"{r['setup_s']:.2f} | {r['startup_s']:.2f} | {r['first_document_s']:.2f} | "
                f"{r['per_document_s']:.2f} | {r['efficiency']:.3f} | {ratio} |"
            )

    cold = []
    if "c" in args.paths and args.cold_runs:
        print(f"\n{args.cold_runs} cold bundle jobs of 1 document in a row:", flush=True)
        for _ in range(args.cold_runs):
            cold.append(run_job("c", 1, art, work, None))
        good = [r for r in cold if r["ok"]]
        walls = [r["wall_s"] for r in good]
        print(
            f"  {len(good)} of {len(cold)} succeeded; wall median "
            f"{statistics.median(walls):.2f} s, max {max(walls):.2f} s; job start to first "
            f"document median {statistics.median(r['first_document_s'] for r in good):.2f} s"
            if good
            else f"  0 of {len(cold)} succeeded"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "cold": cold, "bundle_mib": art.get("bundle_mib")}, indent=1)
        )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for leftover in work.glob("job-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
