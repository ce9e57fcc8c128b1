"""Ids, keys and the traversal corpus: every hostile string is refused before any I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rythmiq import OptionsError, StorageError
from rythmiq.layout import (
    ID_PATTERN,
    Ids,
    artifact_key,
    job_payload_key,
    output_name,
    validate_id,
    validate_input_key,
)

# Hostile ids: each must be refused by validate_id.
BAD_IDS = [
    "",
    ".",
    "..",
    "../etc",
    "..\\windows",
    "a/b",
    "/abs",
    "a\\b",
    "a\x00b",
    "\x00",
    "a\nb",
    "a b",
    "%2e%2e",
    "%2E%2E%2F",
    "%252e%252e%252f",
    "..%2f",
    "a%00",
    "a..b",
    "a.",
    "abc..",
    ".hidden",
    "-dash-first",
    "_under",
    "\u2024\u2024",  # one dot leader x2
    "\u2025",  # two dot leader
    "a\u2215b",  # division slash
    "a\u2044b",  # fraction slash
    "\uff0e\uff0e",  # full-width dots
    "a\uff0fb",  # full-width slash
    "\uff41bc",  # full-width a
    "caf\u00e9",
    "a\u200bb",  # zero-width space
    "a\u202eb",  # right-to-left override
    "x" * 129,
    "a:b",
    "a*b",
    "a?b",
    "~user",
    "$HOME",
    "a;b",
    "a|b",
]

# Hostile input keys: each must be refused by validate_input_key(prefix="input/").
BAD_KEYS = [
    "",
    "input/",
    "input//x.jpg",
    "input/a//b.jpg",
    "/input/x.jpg",
    "//input/x.jpg",
    "input/../master/u/d/master.jpg.enc",
    "input/./x.jpg",
    "input/..",
    "input/a/../../output/x",
    "input\\..\\x.jpg",
    "input/a\\b.jpg",
    "input/x.jpg\x00.png",
    "input/%2e%2e/x.jpg",
    "input/%2E%2E%2Fmaster",
    "input/%252e%252e%252fmaster",
    "input/..%2fmaster",
    "input%2f..%2fmaster",
    "input/x%00.jpg",
    "input/\u2024\u2024/x.jpg",
    "input/\uff0e\uff0e/x.jpg",
    "input/a\u2215b.jpg",
    "input/a\uff0fb.jpg",
    "input/a\u2044b.jpg",
    "input\uff0fx.jpg",
    "input/x.jpg.",
    "input/dir./x.jpg",
    "input/x" + "y" * 1100,
    "input/" + "a" * 256,
    "output/u/j/result.json",
    "master/u/d/master.jpg.enc",
    "x.jpg",
    "inputs/x.jpg",
    "input",
    "input/x\n.jpg",
    "input/x\r.jpg",
    "input/x\t.jpg",
    "input/ x.jpg",
    "input/.hidden",
    "input/-x.jpg",
    "input/a b.jpg",
    "file:///etc/passwd",
    "s3://other-bucket/input/x.jpg",
    "input/x.jpg?versionId=1",
    "input/x.jpg#frag",
    "C:\\input\\x.jpg",
    "input/caf\u00e9.jpg",
]


def test_corpus_is_large_enough():
    assert len(BAD_IDS) + len(BAD_KEYS) >= 50
    assert len(set(BAD_KEYS)) == len(BAD_KEYS)


@pytest.mark.parametrize("value", BAD_IDS)
def test_bad_ids_are_rejected(value):
    with pytest.raises(StorageError) as exc:
        validate_id(value, "user_id")
    assert exc.value.code == "storage.invalid_key"
    with pytest.raises(StorageError):
        Ids(value, "job-1", "doc-1")
    with pytest.raises(StorageError):
        Ids("u1", value, "doc-1")
    with pytest.raises(StorageError):
        Ids("u1", "job-1", value)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_input_keys_are_rejected(key):
    with pytest.raises(StorageError) as exc:
        validate_input_key(key)
    assert exc.value.code == "storage.invalid_key"


@pytest.mark.parametrize("value", ["u1", "user-42", "a", "A.b_c-d", "x" * 128, "2026.11.28"])
def test_good_ids(value):
    assert validate_id(value) == value


@pytest.mark.parametrize("key", ["input/x.jpg", "input/u1/2026/scan_01.JPG", "input/a.b.c"])
def test_good_input_keys(key):
    assert validate_input_key(key) == key


def test_non_string_ids_and_keys():
    for value in (None, 5, b"abc", ["a"]):
        with pytest.raises(StorageError):
            validate_id(value)
        with pytest.raises(StorageError):
            validate_input_key(value)


def test_artifact_keys():
    ids = Ids("u1", "job-7", "doc-3")
    assert artifact_key("master", ids, ext="jpg") == "master/u1/doc-3/master.jpg.enc"
    assert artifact_key("preview", ids) == "output/u1/job-7/preview.jpg"
    assert artifact_key("result", ids) == "output/u1/job-7/result.json"
    assert artifact_key("normalized", ids) == "output/u1/job-7/normalized.jpg"
    assert artifact_key("text", ids) == "output/u1/job-7/text.txt"
    for bad_ext in (None, "", "../x", "JPG", "j/p", "verylongext"):
        with pytest.raises(StorageError):
            artifact_key("master", ids, ext=bad_ext)
    with pytest.raises(StorageError):
        artifact_key("preview", ids, ext="jpg")
    with pytest.raises(StorageError):
        artifact_key("secrets", ids)  # type: ignore[arg-type]


def test_output_names_are_the_artifact_keys_inside_their_folder():
    ids = Ids("u1", "job-7", "doc-3")
    for kind in ("normalized", "preview", "text", "hocr", "pdf", "result"):
        assert f"output/u1/job-7/{output_name(kind)}" == artifact_key(kind, ids)
        assert artifact_key(kind, ids, per_document=True).endswith(f"/doc-3/{output_name(kind)}")
    assert output_name("normalized", page=12) == "pages/0012/normalized.jpg"
    assert output_name("preview", page=1) == "pages/0001/preview.jpg"
    for kind, page in (("master", None), ("text", 1), ("normalized", 0), ("nope", None)):
        with pytest.raises(StorageError):
            output_name(kind, page=page)  # type: ignore[arg-type]


def test_job_payload_keys():
    assert job_payload_key("job-7-01of12") == "job-7-01of12.json"
    for bad in ("../x", "a/b", ""):
        with pytest.raises(StorageError):
            job_payload_key(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_accepted_id_is_a_single_safe_segment(value):
    try:
        validate_id(value)
    except StorageError:
        return
    assert ID_PATTERN.fullmatch(value) and value.isascii()
    assert "/" not in value and "\\" not in value and ".." not in value and "%" not in value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab./\\%2eEfF\x00\uff0e\u2215")), max_size=30))
def test_any_accepted_key_stays_under_its_prefix(tail):
    key = "input/" + tail
    try:
        validate_input_key(key)
    except StorageError:
        return
    import posixpath

    assert posixpath.normpath(key).startswith("input/")
    assert posixpath.normpath(key) == key


def test_master_folder_and_extension_round_trip():
    from rythmiq.layout import master_ext_of, master_folder

    ids = Ids("u-1", "job-9", "doc.7")
    for ext in ("jpg", "png", "tif", "pdf", "bin"):
        key = artifact_key("master", ids, ext=ext)
        assert key.startswith(master_folder(ids)) and master_folder(ids).endswith("/")
        assert master_ext_of(key) == ext
    # The job never places the master.
    assert master_folder(Ids("u-1", "other-job", "doc.7")) == master_folder(ids)
    for other in (
        "master/u-1/doc.7/master.png",
        "output/u-1/job-9/result.json",
        "x.png.enc",
        "master/u-1/doc.7/.master.png.enc.1234.tmp",
        "master/u-1/doc.7/master.PNG.enc",
    ):
        assert master_ext_of(other) is None, other
    with pytest.raises(StorageError):
        master_folder("u-1/doc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "document_id",
    ["result.json", "Result.JSON", "pages", "normalized.jpg", "preview.jpg", "text.txt",
     "text.hocr", "searchable.pdf"],
)  # fmt: skip
def test_a_document_id_cannot_name_a_file_of_the_layout(document_id):
    # A document folder "result.json/" would sit where the job's completion marker goes.
    with pytest.raises(StorageError) as exc:
        Ids("u1", "j1", document_id)
    assert exc.value.code == "storage.invalid_key" and "reserved" in str(exc.value)


def test_names_close_to_the_reserved_ones_are_fine():
    for document_id in ("result.json.bak", "result", "pages2", "my-text.txt"):
        assert Ids("u1", "j1", document_id).document_id == document_id


def test_a_payload_with_a_reserved_document_id_is_refused():
    import json

    from rythmiq import PayloadError
    from rythmiq.payload import parse_payload

    payload = {
        "version": 1,
        "job_id": "j1",
        "user_id": "u1",
        "output": "/tmp/store",
        "documents": [
            {"document_id": "d1", "input": "input/a.png"},
            {"document_id": "result.json", "input": "input/b.png"},
        ],
    }
    with pytest.raises(PayloadError) as exc:
        parse_payload(json.dumps(payload))
    assert exc.value.code == "payload.invalid_id"


# ------------------------------------------- issue 18: the keys of encrypted artifacts


def test_encrypted_outputs_are_keyed_by_their_name_with_enc():
    from rythmiq.layout import ENCRYPT_POLICIES, encrypted_kinds, is_output_file

    ids = Ids("u1", "job-7", "doc-3")
    assert artifact_key("text", ids, encrypted=True) == "output/u1/job-7/text.txt.enc"
    assert artifact_key("normalized", ids, page=2, per_document=True, encrypted=True) == (
        "output/u1/job-7/doc-3/pages/0002/normalized.jpg.enc"
    )
    assert artifact_key("master", ids, ext="png", encrypted=True).endswith("master.png.enc")
    with pytest.raises(StorageError):
        artifact_key("result", ids, encrypted=True)  # result.json is never encrypted
    for name in ("text.txt.enc", "pages/0001/preview.jpg.enc", "searchable.pdf.enc"):
        assert is_output_file(name), name  # so a re-run removes them when stale
    for name in ("result.json.enc", "text.txt.enc.enc", "master.png.enc", "text.enc"):
        assert not is_output_file(name), name
    assert ENCRYPT_POLICIES == ("master", "all", "all+preview")
    assert encrypted_kinds("master") == {"master"}
    assert encrypted_kinds("all") == {"master", "normalized", "text", "hocr", "pdf"}
    assert encrypted_kinds("all+preview") == encrypted_kinds("all") | {"preview"}
    with pytest.raises(OptionsError):
        encrypted_kinds("everything")


@pytest.mark.parametrize("document_id", ["text.txt.enc", "Normalized.JPG.enc", "preview.jpg.enc"])
def test_a_document_id_cannot_name_an_encrypted_file_of_the_layout(document_id):
    with pytest.raises(StorageError) as exc:
        Ids("u1", "j1", document_id)
    assert "reserved" in str(exc.value)


@pytest.mark.parametrize(
    "key",
    [
        "master/u1/d1/master.png.enc",
        "output/u1/j1/text.txt.enc",
        "output/u1/j1/d1/text.hocr.enc",
        "output/u1/j1/pages/0003/normalized.jpg.enc",
        "output/u1/j-9/d1/pages/0001/preview.jpg.enc",
        "output/u1/j1/searchable.pdf.enc",
    ],
)
def test_the_encrypted_artifacts_of_a_document_are_accepted(key):
    from rythmiq.layout import validate_encrypted_key

    assert validate_encrypted_key(key, user_id="u1", document_id="d1") == key


@pytest.mark.parametrize(
    "key",
    [
        "master/u2/d1/master.png.enc",  # another user
        "master/u1/d2/master.png.enc",  # another document
        "output/u2/j1/text.txt.enc",
        "output/u1/j1/d2/text.txt.enc",
        "output/u1/j1/text.txt",  # not encrypted
        "output/u1/j1/result.json",
        "output/u1/j1/secret.enc",
        "output/u1/../u2/j1/text.txt.enc",
        "output/u1/j1/%2e%2e/text.txt.enc",
        "/output/u1/j1/text.txt.enc",
        "input/a.png.enc",
        "output/u1/j1/pages/1/normalized.jpg.enc",
        "output/u1/j1/d1/d1/text.txt.enc",
        "output/u1/text.txt.enc",
        "",
        None,
    ],
)
def test_any_other_key_is_refused_before_any_io(key):
    from rythmiq.layout import validate_encrypted_key

    with pytest.raises(StorageError) as exc:
        validate_encrypted_key(key, user_id="u1", document_id="d1")
    assert exc.value.code == "storage.invalid_key"
