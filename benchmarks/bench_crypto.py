"""Encryption benchmark: encrypt/decrypt throughput of rythmiq.crypto in MB/s on one core.

    python benchmarks/bench_crypto.py [--sizes 64 256] [--repeat 3] [--json out.json]

Everything stays in memory: the stream API reads from and writes to ``io.BytesIO``, the bytes
API takes and returns ``bytes``. Each figure is the best of ``--repeat`` runs, with the process
pinned to one CPU where the OS allows it. MB is 10**6 bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from rythmiq.crypto import (
    DEFAULT_CHUNK_SIZE,
    EncryptionContext,
    decrypt,
    decrypt_stream,
    encrypt,
    encrypt_stream,
)
from rythmiq.keyring import Keyring

CTX = EncryptionContext("bench-user", "bench-doc", "users/bench-user/docs/bench-doc/master.bin")


def pin_one_core() -> int | None:
    """Pin this process to one CPU (Linux); the CPU number, or ``None`` where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})
    return cpu


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(size_mb: int, repeat: int, keyring: Keyring) -> list[dict[str, object]]:
    data = os.urandom(size_mb * 1_000_000)
    blob = encrypt(data, keyring, CTX)
    assert decrypt(blob, keyring, CTX) == data

    def enc_stream() -> None:
        encrypt_stream(io.BytesIO(data), io.BytesIO(), keyring, CTX)

    def dec_stream() -> None:
        decrypt_stream(io.BytesIO(blob), io.BytesIO(), keyring, CTX)

    cases = [
        ("stream", "encrypt", enc_stream),
        ("stream", "decrypt", dec_stream),
        ("bytes", "encrypt", lambda: encrypt(data, keyring, CTX)),
        ("bytes", "decrypt", lambda: decrypt(blob, keyring, CTX)),
    ]
    rows: list[dict[str, object]] = []
    for api, op, fn in cases:
        seconds = best_of(repeat, fn)
        rows.append(
            {
                "api": api,
                "op": op,
                "size_mb": size_mb,
                "seconds": round(seconds, 4),
                "mb_per_s": round(len(data) / seconds / 1e6, 1),
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="sizes in MB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    import cryptography

    cpu = pin_one_core()
    keyring = Keyring.generate("k-bench")
    rows = [row for size in args.sizes for row in measure(size, args.repeat, keyring)]
    figures = {
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "machine": platform.machine(),
        "pinned_cpu": cpu,
        "chunk_size": DEFAULT_CHUNK_SIZE,
        "repeat": args.repeat,
        "results": rows,
    }

    print(f"{'api':<8}{'op':<9}{'MB':>6}{'best s':>10}{'MB/s':>10}")
    for r in rows:
        print(
            f"{r['api']:<8}{r['op']:<9}{r['size_mb']:>6}{r['seconds']:>10.3f}{r['mb_per_s']:>10.1f}"
        )
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
