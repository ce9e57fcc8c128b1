"""Fuzzing: mutated images and payloads end in a result or a typed error, nothing else.

Each property runs a few hundred deterministic examples in the normal suite. Set
``RYTHMIQ_FUZZ_EXAMPLES`` (``nox -s fuzz`` sets 5000) for a long run, and
``RYTHMIQ_FUZZ_REPORT=path.json`` to keep the outcome counts; run with ``-s`` to see the
summary table. Crashes found this way are kept in ``tests/regressions/`` and replayed by
``test_regressions_replay``.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _helpers import ScriptedEngine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from rythmiq import InputError, PayloadError, ProcessOptions, RythmiqError, process
from rythmiq.layout import ID_PATTERN
from rythmiq.payload import parse_payload

LONG_RUN = os.environ.get("RYTHMIQ_FUZZ_EXAMPLES")
REGRESSIONS = Path(__file__).parent / "regressions"
# Small output box: mutated seeds are tiny, and the fuzz is about decoding, not resizing.
OPTIONS = ProcessOptions(box=(256, 256), preview_size=64)

OUTCOMES: dict[str, Counter[str]] = {"image": Counter(), "payload": Counter()}


def fuzz_settings(examples: int) -> Any:
    return settings(
        max_examples=int(LONG_RUN) if LONG_RUN else examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def outcome_report():
    """Print (and optionally save) how many cases ended in which outcome."""
    yield
    lines = ["", "fuzz outcomes (cases by result or error code):"]
    for target, counts in OUTCOMES.items():
        total = sum(counts.values())
        lines.append(f"  {target}: {total} cases")
        for outcome, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {outcome:<34} {n:>7}")
    print("\n".join(lines))
    report = os.environ.get("RYTHMIQ_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({k: dict(v) for k, v in OUTCOMES.items()}, indent=2))


# --- seeds ---------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def seed_page() -> Image.Image:
    rng = np.random.default_rng(7)
    pixels = np.full((24, 32, 3), 235, dtype=np.uint8)
    pixels[6:9, 3:28] = 20
    pixels[14:17, 3:20] = 40
    pixels += rng.integers(0, 12, pixels.shape, dtype=np.uint8)
    return Image.fromarray(pixels)


def make_seeds() -> dict[str, bytes]:
    page = seed_page()
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [page, page.rotate(90), page.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "jpeg": encode(page, "JPEG", quality=80, exif=exif, dpi=(200, 200)),
        "jpeg_progressive": encode(page.convert("L"), "JPEG", progressive=True),
        "png": encode(page.convert("P"), "PNG", transparency=0, dpi=(300, 300)),
        "png16": encode(Image.fromarray(np.asarray(page.convert("L"), np.uint16) * 257), "PNG"),
        "tiff": encode(page, "TIFF", compression="tiff_deflate", dpi=(150, 150)),
        "tiff_pages": encode(page.convert("1"), "TIFF", save_all=True, append_images=[page]),
        "pdf": encode(page, "PDF"),
        "gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=50),
        "bmp": encode(page, "BMP"),
        "jp2": encode(page, "JPEG2000"),
        "pgm": encode(page.convert("L"), "PPM"),
    }


SEEDS = make_seeds()

MAGIC = 12  # bytes of format signature that most mutations leave alone (JPEG 2000, WebP)
# Repeats weight the draw: breaking the magic number is rare, flips and fields common.
IMAGE_OPS = [
    "flip",
    "flip",
    "field",
    "field",
    "byte",
    "truncate",
    "insert",
    "repeat",
    "delete",
    "magic",
]
# Values that break header fields: zero, one, and the edges of each integer width.
FIELD_VALUES = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]


@st.composite
def mutated_image(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(IMAGE_OPS))
        # Past the magic number, so that most cases reach the decoder; "magic" breaks it.
        pos = draw(st.integers(min(MAGIC, len(data)), max(MAGIC, len(data) - 1)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "repeat":  # duplicate a slice many times: segments, chunks, frames
            size = draw(st.integers(1, 64))
            data[pos:pos] = data[pos : pos + size] * draw(st.integers(2, 200))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "magic" and data:
            data[draw(st.integers(0, min(MAGIC, len(data)) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif op == "field":  # overwrite a header-ish field with an edge value
            pos = draw(st.integers(min(MAGIC, len(data)), max(MAGIC, min(len(data), 160))))
            width = draw(st.sampled_from([1, 2, 4]))
            value = draw(st.sampled_from(FIELD_VALUES)) & ((1 << (8 * width)) - 1)
            order = draw(st.sampled_from(["<", ">"]))
            packed = struct.pack(order + {1: "B", 2: "H", 4: "I"}[width], value)
            data[pos : pos + width] = packed
    if name.startswith("png") and draw(st.booleans()):
        data = bytearray(fix_png_crcs(bytes(data)))  # so that the damage reaches the decoder
    return name, bytes(data)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute the CRC of every whole chunk, as a careless or hostile encoder would."""
    out, pos = bytearray(data), 8
    while pos + 12 <= len(out):
        length = struct.unpack_from(">I", out, pos)[0]
        if pos + 12 + length > len(out):
            break
        struct.pack_into(">I", out, pos + 8 + length, zlib.crc32(out[pos + 4 : pos + 8 + length]))
        pos += 12 + length
    return bytes(out)


def image_outcome(data: bytes) -> str:
    """``"ok"`` or the error code; anything that is not a RythmiqError propagates."""
    try:
        process(data, options=OPTIONS, engine=ScriptedEngine())
    except RythmiqError as exc:
        assert isinstance(exc, InputError), exc  # only the loading edge sees these bytes
        return exc.code
    return "ok"


@given(mutated_image())
@fuzz_settings(250)
def test_mutated_images_give_a_result_or_an_input_error(case):
    _, data = case
    OUTCOMES["image"][image_outcome(data)] += 1


def test_every_seed_is_valid():
    outcomes = {name: image_outcome(data) for name, data in SEEDS.items()}
    assert outcomes == dict.fromkeys(SEEDS, "ok")  # PDF included: process() reads PDFs


# --- payloads ------------------------------------------------------------------------------

BASE_SINGLE: dict[str, Any] = {
    "version": 1,
    "job_id": "job-1",
    "user_id": "user_1",
    "output": "memory://fuzz",
    "document_id": "doc.1",
    "input": "input/user_1/scan.jpg",
    "options": {"threshold": 0.4, "box": [2480, 3508], "max_pixels": 1_000_000},
}
BASE_MANY: dict[str, Any] = {
    "version": 1,
    "job_id": "job-2",
    "user_id": "user_2",
    "output": "s3://bucket/prefix",
    "documents": [
        {"document_id": "a", "input": "input/a.png"},
        {"document_id": "b", "input": "s3://bucket/prefix/input/b.tif"},
    ],
}

HOSTILE_STRINGS = [
    "",
    "..",
    "../etc/passwd",
    "input/../../etc/passwd",
    "input/a/../../b",
    "input//a",
    "/input/a",
    "input/%2e%2e/a",
    "input/a\x00b",
    "input\\a",
    "a\u2024\u2024",  # one-dot leaders look like ".."
    "input\u2215a",  # division slash
    "\ufeffjob",
    "\ud800",  # a lone surrogate
    "job.",
    "A" * 129,
    "x" * 100_000,
    "s3://other-bucket/input/a",
    "http://169.254.169.254/latest",
    "file:///etc",
    "memory://fuzz/input/../a",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(HOSTILE_STRINGS),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["version", "job_id", "user_id", "output", "document_id", "input", "options", "documents"]
OPTION_NAMES = [*sorted(ProcessOptions().to_dict()), "unknown_option"]


@st.composite
def mutated_payload(draw: st.DrawFn) -> bytes:
    payload = json.loads(json.dumps(draw(st.sampled_from([BASE_SINGLE, BASE_MANY]))))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "drop", "option", "document", "extra", "nest"]))
        if op == "set":
            payload[draw(st.sampled_from(FIELDS))] = draw(json_values)
        elif op == "drop":
            payload.pop(draw(st.sampled_from(FIELDS)), None)
        elif op == "option":
            options = payload.setdefault("options", {})
            if isinstance(options, dict):
                options[draw(st.sampled_from(OPTION_NAMES))] = draw(json_values)
        elif op == "document":
            docs = payload.get("documents")
            if isinstance(docs, list) and docs and isinstance(docs[0], dict):
                docs[0][draw(st.sampled_from(["document_id", "input", "extra"]))] = draw(
                    json_values
                )
            elif isinstance(docs, list):
                docs.append(draw(json_values))
        elif op == "extra":
            payload[draw(st.text(max_size=12))] = draw(json_values)
        elif op == "nest":
            depth = draw(st.sampled_from([2, 17, 100, 2000]))
            payload[draw(st.sampled_from(FIELDS))] = "@NEST@"
            text = json.dumps(payload).replace('"@NEST@"', "[" * depth + "]" * depth)
            return text.encode("utf-8", "surrogatepass")
    text = json.dumps(payload, ensure_ascii=draw(st.booleans()))
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # raw damage to the JSON text
        pos = draw(st.integers(0, max(0, len(raw) - 1)))
        op = draw(st.sampled_from(["flip", "truncate", "insert", "byte"]))
        if op == "flip" and raw:
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del raw[pos:]
        elif op == "insert":
            raw[pos:pos] = draw(
                st.sampled_from([b"NaN", b"1" * 5000, b"\xff", b"[" * 3000, b"\x00"])
            )
        elif op == "byte" and raw:
            raw[pos] = draw(st.integers(0, 255))
    return bytes(raw)


def payload_outcome(raw: bytes | str) -> str:
    try:
        payload = parse_payload(raw)
    except PayloadError as exc:
        return exc.code
    # What was accepted is safe to use: ids in the id alphabet, keys inside input/.
    for document in payload.documents:
        for value in (payload.job_id, payload.user_id, document.document_id):
            assert ID_PATTERN.fullmatch(value) and ".." not in value, value
        assert document.input_key.startswith("input/"), document.input_key
        assert ".." not in document.input_key.split("/"), document.input_key
    return "ok"


@given(mutated_payload())
@fuzz_settings(250)
def test_mutated_payloads_parse_or_raise_payload_error(raw):
    OUTCOMES["payload"][payload_outcome(raw)] += 1


@given(st.text(max_size=200) | st.sampled_from(HOSTILE_STRINGS))
@fuzz_settings(50)
def test_any_text_payload_parses_or_raises_payload_error(text):
    OUTCOMES["payload"][payload_outcome(text)] += 1


def test_base_payloads_are_valid():
    for base in (BASE_SINGLE, BASE_MANY):
        assert payload_outcome(json.dumps(base).encode()) == "ok"


# --- regressions -----------------------------------------------------------------------------


def regression_cases() -> list[tuple[str, str]]:
    expected = json.loads((REGRESSIONS / "expected.json").read_text())
    files = sorted(p.name for p in REGRESSIONS.iterdir() if p.suffix != ".md")
    files.remove("expected.json")
    assert files == sorted(expected), "every file in tests/regressions/ needs an expectation"
    return sorted(expected.items())


@pytest.mark.parametrize(("name", "expected"), regression_cases())
def test_regressions_replay(name, expected):
    """Inputs that once crashed rythmiq now end in the recorded typed outcome."""
    data = (REGRESSIONS / name).read_bytes()
    outcome = payload_outcome(data) if name.startswith("payload-") else image_outcome(data)
    assert outcome == expected


@pytest.mark.parametrize(
    "name", ["image-tiff-page2-keyerror.tif", "image-tiff-page2-missing-width.tif"]
)
def test_a_broken_later_tiff_page_fails_the_document_but_not_load_image(name):
    """process() checks every page first; load_image() still reads page 1 only."""
    from rythmiq import load_image

    data = (REGRESSIONS / name).read_bytes()
    with pytest.raises(InputError, match="page 2") as info:
        process(data, options=OPTIONS, engine=ScriptedEngine())
    assert info.value.code == "input.unreadable"
    assert load_image(data).pixels.size > 0


# --- payload hardening, one case each ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("\ud800", "payload.malformed"),  # a str that is not encodable Unicode
        (b"\xed\xa0\x80", "payload.malformed"),  # the same surrogate as (invalid) UTF-8
        ("[" * 3000 + "]" * 3000, "payload.malformed"),  # past Python's recursion limit
        ('{"version": ' + "9" * 5000 + "}", "payload.malformed"),  # past the int digit limit
        ('{"version": NaN}', "payload.malformed"),
        ('{"version": -Infinity}', "payload.malformed"),
    ],
)
def test_payload_text_that_python_chokes_on(raw, code):
    with pytest.raises(PayloadError) as info:
        parse_payload(raw)
    assert info.value.code == code


def test_payload_nesting_limit():
    from rythmiq.payload import MAX_DEPTH

    def with_box(depth: int) -> str:
        box = "[" * depth + "16, 16" + "]" * depth
        return json.dumps({**BASE_SINGLE, "options": {"box": "@"}}).replace('"@"', box)

    assert parse_payload(with_box(1)).options.box == (16, 16)
    with pytest.raises(PayloadError) as info:
        parse_payload(with_box(3))  # nested, but shallow: the schema refuses it
    assert info.value.code == "payload.invalid"
    with pytest.raises(PayloadError) as info:
        parse_payload(with_box(MAX_DEPTH))  # deep: refused before the schema sees it
    assert info.value.code == "payload.invalid"
    assert "levels deep" in info.value.message
