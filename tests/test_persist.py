"""The store stage's encryption policy (issue 18): what is stored encrypted, under which
context, what ``result.json`` says about it, and what a re-run under another policy leaves."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from _helpers import ScriptedEngine, render_page
from PIL import Image

from rythmiq import CryptoError, Ids, OptionsError, ProcessOptions, Store, process
from rythmiq.crypto import EncryptionContext, decrypt
from rythmiq.keyring import Keyring
from rythmiq.worker import _stored_summary

IDS = Ids("u1", "j1", "d1")
# What the scripted engine reads on every page: it must never sit in clear in the store.
SECRET_LINE = "Patient Jane Roe, account 0042-7781"


@pytest.fixture(scope="module")
def two_pages() -> bytes:
    page = Image.fromarray(render_page(width=400, height=500, font_size=20, margin=20))
    buf = io.BytesIO()
    page.save(buf, "TIFF", save_all=True, append_images=[page.rotate(0)])
    return buf.getvalue()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate("k1")


def _run(source, store, keyring, *, encrypt="master", outputs=("txt", "hocr", "pdf"), ids=IDS):
    return process(
        source,
        options=ProcessOptions(outputs=outputs, rotate=False, encrypt=encrypt),
        engine=ScriptedEngine(lines=[(SECRET_LINE, 0.9)]),
        store=store,
        ids=ids,
        keyring=keyring,
    )


def _stored_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _open(store, keyring, key, ids=IDS):
    return decrypt(store.read(key), keyring, EncryptionContext(ids.user_id, ids.document_id, key))


def test_encrypt_all_seals_every_artifact_that_holds_the_document(tmp_path, two_pages, keyring):
    store = Store.open(str(tmp_path))
    result = _run(two_pages, store, keyring, encrypt="all")
    folder = "output/u1/j1/"
    clear = {f"{folder}pages/000{n}/preview.jpg" for n in (1, 2)} | {f"{folder}result.json"}
    sealed = {f"{folder}pages/000{n}/normalized.jpg.enc" for n in (1, 2)}
    sealed |= {f"{folder}{name}.enc" for name in ("text.txt", "text.hocr", "searchable.pdf")}
    assert set(store.list("output/")) == clear | sealed
    # Each one decrypts, under its own context, to what the clear policy would have stored.
    for number, page in enumerate(result.pages, 1):
        assert _open(store, keyring, f"{folder}pages/000{number}/normalized.jpg.enc") == (
            page.image.data
        )
    assert _open(store, keyring, f"{folder}text.txt.enc").decode() == result.text
    assert SECRET_LINE in _open(store, keyring, f"{folder}text.hocr.enc").decode()
    assert _open(store, keyring, f"{folder}searchable.pdf.enc").startswith(b"%PDF")
    # Neither the OCR text nor a normalized image is anywhere in the store in clear.
    files = _stored_files(tmp_path)
    for name, data in files.items():
        assert SECRET_LINE.encode() not in data, name
        assert SECRET_LINE.split()[-1].encode() not in data, name
        for page in result.pages:
            assert page.image.data[-264:-8] not in data, name  # its entropy-coded tail
    # result.json says which artifacts are encrypted, and the policy.
    stored = json.loads(store.read(f"{folder}result.json"))
    assert stored["status"] == "ok" and stored["encrypt"] == "all"
    flags = {a["key"]: a["encrypted"] for a in stored["artifacts"]}
    assert flags == {
        "master/u1/d1/master.tif.enc": True,
        **{key: True for key in sealed},
        **{key: False for key in clear - {f"{folder}result.json"}},
    }
    assert {a.key: a.encrypted for a in result.artifacts[:-1]} == flags
    # A poller still reads the status and the counts, not the text.
    assert stored["text"] is None and stored["page_count"] == 2
    ocr = stored["pages"][0]["ocr"]
    assert ocr["text"] is None and ocr["lines"] is None
    assert ocr["line_count"] == 1 and ocr["text_length"] == len(SECRET_LINE)


def test_an_encrypted_artifact_does_not_decrypt_in_another_s_place(tmp_path, two_pages, keyring):
    store = Store.open(str(tmp_path))
    _run(two_pages, store, keyring, encrypt="all")
    _run(two_pages, store, keyring, encrypt="all", ids=Ids("u1", "j2", "d1"))
    folder = "output/u1/j1/"
    swaps = [
        (f"{folder}text.txt.enc", f"{folder}text.hocr.enc"),  # another kind
        (f"{folder}pages/0001/normalized.jpg.enc", f"{folder}pages/0002/normalized.jpg.enc"),
        ("output/u1/j2/searchable.pdf.enc", f"{folder}searchable.pdf.enc"),  # another job
    ]
    for source, target in swaps:
        blob = store.read(source)
        with pytest.raises(CryptoError) as exc:
            decrypt(blob, keyring, EncryptionContext("u1", "d1", target))
        assert exc.value.code == "crypto.auth_failed"
    # Nor for another document or user at the same key.
    key = f"{folder}text.txt.enc"
    for user, document in (("u1", "d2"), ("u2", "d1")):
        with pytest.raises(CryptoError):
            decrypt(store.read(key), keyring, EncryptionContext(user, document, key))


def test_all_plus_preview_also_encrypts_the_preview(tmp_path, keyring):
    store = Store.open(str(tmp_path))
    page = render_page(width=400, height=500, font_size=20, margin=20)
    result = _run(page, store, keyring, encrypt="all+preview", outputs=("txt",))
    assert set(store.list("output/")) == {
        "output/u1/j1/normalized.jpg.enc",
        "output/u1/j1/preview.jpg.enc",
        "output/u1/j1/text.txt.enc",
        "output/u1/j1/result.json",
    }
    assert _open(store, keyring, "output/u1/j1/preview.jpg.enc") == result.preview.data
    assert json.loads(store.read("output/u1/j1/result.json"))["encrypt"] == "all+preview"


def test_the_default_policy_encrypts_the_master_only_and_says_so(tmp_path, keyring):
    store = Store.open(str(tmp_path))
    page = render_page(width=400, height=500, font_size=20, margin=20)
    result = _run(page, store, keyring, outputs=("txt",))
    stored = json.loads(store.read("output/u1/j1/result.json"))
    assert stored["encrypt"] == "master" and stored["text"] == result.text
    assert [(a["kind"], a["encrypted"]) for a in stored["artifacts"]] == [
        ("master", True),
        ("normalized", False),
        ("preview", False),
        ("text", False),
    ]
    assert stored["pages"][0]["ocr"]["lines"][0]["text"] == SECRET_LINE


@pytest.mark.parametrize(("first", "then"), [("all", "master"), ("master", "all+preview")])
def test_a_rerun_under_another_policy_leaves_none_of_the_first_one_s_files(
    tmp_path, two_pages, keyring, first, then
):
    store = Store.open(str(tmp_path))
    _run(two_pages, store, keyring, encrypt=first)
    result = _run(two_pages, store, keyring, encrypt=then)
    listed = {a.key for a in result.artifacts}
    assert set(store.list()) == listed  # nothing of the first policy's outputs is left
    sealed = then != "master"
    for key in listed - {"output/u1/j1/result.json"}:
        assert key.endswith(".enc") == (sealed or key.startswith("master/")), key


def test_the_policy_is_an_option_checked_when_it_is_built():
    for bad in ("none", "ALL", "", None, True):
        with pytest.raises(OptionsError):
            ProcessOptions(encrypt=bad)  # type: ignore[arg-type]
    assert ProcessOptions.from_dict({"encrypt": "all"}).encrypt == "all"
    fingerprints = {ProcessOptions(encrypt=p).fingerprint() for p in ("master", "all")}
    assert len(fingerprints) == 2  # a resumed job redoes documents stored under another


def test_a_result_stored_without_its_text_still_gives_the_resume_summary(keyring):
    page = render_page(width=400, height=500, font_size=20, margin=20)
    result = process(page, options=ProcessOptions(rotate=False), engine=ScriptedEngine())
    assert _stored_summary(result.to_dict(content=False)) == _stored_summary(result.to_dict())
