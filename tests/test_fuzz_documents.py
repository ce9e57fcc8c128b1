"""Mutated PDFs and multi-page TIFFs through load_document, in a child process.

pdfium is C code: a crash there would kill the test process, so the cases run in a child
under a memory limit and a timeout, and the test reads one JSON line per case. Only a
decoded page or a typed ``InputError`` is accepted. ``RYTHMIQ_FUZZ_EXAMPLES`` sets the
number of cases per seed (default 120; ``nox -s fuzz`` runs more).
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

CASES = int(os.environ.get("RYTHMIQ_FUZZ_EXAMPLES", "120"))
ADDRESS_SPACE_LIMIT = 3 << 30
TIMEOUT_S = 300

# PDF tokens worth damaging on purpose: counts, sizes, lengths, references, filters.
_PDF_TOKENS = re.compile(
    rb"/Count \d+|/Length \d+|/MediaBox ?\[[^\]]*\]|/Width \d+|/Height \d+|\d+ 0 R|"
    rb"/BitsPerComponent \d+|/Filter ?/\w+|startxref\s+\d+|/Rotate \d+"
)
_REPLACEMENTS = (
    b"/Count 999999999",
    b"/Count -1",
    b"/Count 0",
    b"/Length 99999999",
    b"/Length 0",
    b"/MediaBox [0 0 1e30 1e30]",
    b"/MediaBox [0 0 0 0]",
    b"/MediaBox [0 0 -5 nan]",
    b"/Width 0",
    b"/Width 2147483647",
    b"/Height 99999999",
    b"9999 0 R",
    b"1 0 R",
    b"/BitsPerComponent 77",
    b"/Filter /JBIG2Decode",
    b"/Filter /Nonsense",
    b"startxref 1",
    b"/Rotate 45",
)


def seeds() -> dict[str, bytes]:
    from _helpers import render_page, scan_pdf, text_pdf, tiff

    small = [
        render_page(["Fuzz page one"], width=300, height=400, font_size=20, margin=20),
        render_page(["Page two"], width=400, height=300, font_size=20, margin=20),
    ]
    return {
        "scan.pdf": scan_pdf(small, dpi=72),
        "text.pdf": text_pdf(2, size=(200, 300)),
        "pages.tif": tiff([*small, small[0][:, :, 0]]),
    }


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    kind = int(rng.integers(0, 5))
    if kind == 0:  # bit flips
        for _ in range(int(rng.integers(1, 16))):
            i = int(rng.integers(0, len(out)))
            out[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # truncation
        out = out[: int(rng.integers(1, len(out)))]
    elif kind == 2:  # a slice repeated
        i = int(rng.integers(0, len(out)))
        j = min(len(out), i + int(rng.integers(1, 512)))
        out[i:i] = out[i:j] * int(rng.integers(2, 50))
    elif kind == 3 and data.startswith(b"%PDF"):  # a structural token replaced
        matches = list(_PDF_TOKENS.finditer(data))
        if matches:
            m = matches[int(rng.integers(0, len(matches)))]
            new = _REPLACEMENTS[int(rng.integers(0, len(_REPLACEMENTS)))]
            out = bytearray(data[: m.start()] + new + data[m.end() :])
    else:  # random bytes overwritten
        i = int(rng.integers(0, len(out)))
        n = int(rng.integers(1, 64))
        out[i : i + n] = rng.integers(0, 256, size=min(n, len(out) - i), dtype=np.uint8).tobytes()
    return bytes(out)


def run_child(folder: Path) -> None:
    """Load every file in ``folder``; print one JSON line per file, then the peak RSS."""
    import warnings

    from rythmiq import InputError, load_document

    warnings.simplefilter("error")
    for path in sorted(folder.iterdir()):
        report: dict[str, object] = {"name": path.name}
        try:
            doc = load_document(
                path.read_bytes(),
                max_pixels=4_000_000,
                max_total_pixels=20_000_000,
                max_pages=50,
                pdf_dpi=72,
            )
            shapes = [page.pixels.shape for page in doc.pages()]
            assert all(len(s) in (2, 3) for s in shapes)
        except InputError as exc:
            report["outcome"] = exc.code
        except BaseException as exc:  # what this test exists to find
            report["outcome"] = "crash"
            report["detail"] = f"{type(exc).__name__}: {exc}"[:300]
        else:
            report["outcome"] = "ok"
        print(json.dumps(report), flush=True)
    print(json.dumps({"max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)


def test_mutated_documents_load_or_fail_typed(tmp_path):
    rng = np.random.default_rng(20261128)
    for name, data in seeds().items():
        (tmp_path / f"seed-{name}").write_bytes(data)
        for i in range(CASES):
            (tmp_path / f"{i:05d}-{name}").write_bytes(mutate(data, rng))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        preexec_fn=limit,
        cwd=Path(__file__).parent,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    done = {x["name"] for x in lines if "name" in x}
    missing = sorted(p.name for p in tmp_path.iterdir() if p.name not in done)
    assert proc.returncode == 0 and not missing, (
        f"child exited {proc.returncode} (a signal is negative); first file not reported: "
        f"{missing[:1]}\n{proc.stderr[-2000:]}"
    )
    reports = [x for x in lines if "name" in x]
    crashes = [x for x in reports if x["outcome"] == "crash"]
    assert not crashes, crashes[:5]
    seeds_ok = {x["name"]: x["outcome"] for x in reports if x["name"].startswith("seed-")}
    assert set(seeds_ok.values()) == {"ok"}, seeds_ok
    outcomes = Counter(x["outcome"] for x in reports)
    # Mutations must reach the parsers: some still load, some are refused.
    assert outcomes["ok"] > len(reports) // 20 and outcomes["input.unreadable"] > 0, outcomes
    print(dict(outcomes))
    report = os.environ.get("RYTHMIQ_FUZZ_REPORT")
    if report:
        with open(report, "a") as fh:
            fh.write(json.dumps({"documents": dict(outcomes), "cases": len(reports)}) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    run_child(Path(sys.argv[1]))
