"""Stores: local, memory:// and S3 through a real S3 protocol server on loopback."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from _helpers import ScriptedEngine, render_page, within
from PIL import Image

from rythmiq import InputError, ProcessOptions, StorageError, process
from rythmiq.crypto import EncryptionContext, decrypt
from rythmiq.keyring import Keyring
from rythmiq.layout import Ids, artifact_key
from rythmiq.storage import Store, read_url, redact, s3_storage_options

IDS = Ids("user-1", "job-1", "doc-1")
EXPECTED = {
    "master/user-1/doc-1/master.png.enc",
    "output/user-1/job-1/normalized.jpg",
    "output/user-1/job-1/preview.jpg",
    "output/user-1/job-1/text.txt",
    "output/user-1/job-1/result.json",
}


@pytest.fixture(scope="module")
def page_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(render_page(width=850, height=1100, font_size=24, margin=60)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate("k1")


def check_layout(store: Store, result, page_png: bytes, keyring: Keyring) -> None:
    assert set(store.list()) == EXPECTED
    assert [a.kind for a in result.artifacts][-1] == "result"
    for artifact in result.artifacts:
        data = store.read(artifact.key)
        import hashlib

        assert artifact.size == len(data) and artifact.sha256 == hashlib.sha256(data).hexdigest()
        assert artifact.url == store.url_for(artifact.key)
    stored = json.loads(store.read("output/user-1/job-1/result.json"))
    assert stored["ids"] == IDS.to_dict()
    assert {a["key"] for a in stored["artifacts"]} == EXPECTED - {"output/user-1/job-1/result.json"}
    assert stored["page_count"] == 1 and len(stored["pages"]) == 1
    assert stored["pages"][0]["quality"]["score"] == result.quality.score
    assert stored["text"] == result.ocr.text
    # The master is the original input, encrypted, and decrypts only with its ids and key.
    key = "master/user-1/doc-1/master.png.enc"
    blob = store.read(key)
    assert page_png not in blob
    assert decrypt(blob, keyring, EncryptionContext("user-1", "doc-1", key)) == page_png
    normalized = np.asarray(Image.open(io.BytesIO(store.read(artifact_key("normalized", IDS)))))
    assert normalized.shape[:2] == (result.image.height, result.image.width)
    assert store.read(artifact_key("text", IDS)).decode() == result.ocr.text


@pytest.mark.parametrize("kind", ["local", "memory", "file-url"])
def test_store_layout_round_trip(kind, tmp_path, page_png, keyring):
    url = {
        "local": str(tmp_path / "store"),
        "file-url": (tmp_path / "store").as_uri(),
        "memory": f"memory://rythmiq-test-{os.getpid()}-{id(tmp_path)}",
    }[kind]
    store = Store.open(url)
    result = process(page_png, store=store, ids=IDS, keyring=keyring, engine=ScriptedEngine())
    check_layout(store, result, page_png, keyring)
    if kind != "memory":
        leftovers = [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".tmp")]
        assert leftovers == []


def test_s3_round_trip_through_the_server(s3_env, page_png, keyring):
    store = Store.open(f"s3://{s3_env['bucket']}/tenant")
    result = process(page_png, store=store, ids=IDS, keyring=keyring, engine=ScriptedEngine())
    check_layout(store, result, page_png, keyring)
    assert result.artifacts[0].url.startswith(f"s3://{s3_env['bucket']}/tenant/master/")
    # Inputs may be URLs too.
    store.write("input/scan.png", page_png)
    again = process(f"s3://{s3_env['bucket']}/tenant/input/scan.png", engine=ScriptedEngine())
    assert again.source_sha256 == result.source_sha256


def test_master_copied_elsewhere_does_not_decrypt(tmp_path, page_png, keyring):
    store = Store.open(str(tmp_path))
    process(page_png, store=store, ids=IDS, keyring=keyring, engine=ScriptedEngine())
    blob = store.read("master/user-1/doc-1/master.png.enc")
    from rythmiq import CryptoError

    for ctx in (
        EncryptionContext("user-2", "doc-1", "master/user-1/doc-1/master.png.enc"),
        EncryptionContext("user-1", "doc-2", "master/user-1/doc-1/master.png.enc"),
        EncryptionContext("user-1", "doc-1", "master/user-1/doc-9/master.png.enc"),
    ):
        with pytest.raises(CryptoError):
            decrypt(blob, keyring, ctx)
    with pytest.raises(CryptoError):
        decrypt(
            blob,
            Keyring.generate("k1"),
            EncryptionContext("user-1", "doc-1", "master/user-1/doc-1/master.png.enc"),
        )


def test_failure_part_way_removes_what_was_written(tmp_path, page_png, keyring):
    store = Store.open(str(tmp_path / "s"))

    def fail_after_two(artifact):
        if artifact.kind == "normalized":
            raise StorageError("injected", code="storage.write_failed")

    with pytest.raises(StorageError, match="injected"):
        process(
            page_png,
            store=store,
            ids=IDS,
            keyring=keyring,
            engine=ScriptedEngine(),
            on_written=fail_after_two,
        )
    assert store.list() == []


def test_server_stopped_mid_job_then_rerun(s3_env, page_png, keyring, caplog):
    from moto.server import ThreadedMotoServer

    url = f"s3://{s3_env['bucket']}/jobs"
    store = Store.open(url)
    state = {"server": s3_env["server"]}

    def stop_after_master(artifact):
        if artifact.kind == "master":
            state["server"].stop()

    with (
        caplog.at_level(logging.WARNING, logger="rythmiq.storage"),
        pytest.raises(StorageError) as exc,
    ):
        process(
            page_png,
            store=store,
            ids=IDS,
            keyring=keyring,
            engine=ScriptedEngine(),
            on_written=stop_after_master,
        )
    assert exc.value.code == "storage.write_failed"
    # Restart on the same port (moto keeps its state in the process).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_env["port"], verbose=False)
    server.start()
    s3_env["server"] = server
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    store = Store.open(url)
    left = set(store.list())
    # Never a completion marker, and only keys this document's re-run overwrites.
    assert "output/user-1/job-1/result.json" not in left
    assert left <= EXPECTED
    result = process(page_png, store=store, ids=IDS, keyring=keyring, engine=ScriptedEngine())
    check_layout(store, result, page_png, keyring)


def test_unreachable_store_is_a_typed_error(monkeypatch, page_png, keyring):
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("RYTHMIQ_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("RYTHMIQ_S3_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("SPACES_KEY", "k")
    monkeypatch.setenv("SPACES_SECRET", "unreachable-secret-value")
    store = Store.open("s3://nowhere/x")
    with pytest.raises(StorageError) as exc:
        process(page_png, store=store, ids=IDS, keyring=keyring, engine=ScriptedEngine())
    assert exc.value.code == "storage.write_failed"
    assert "unreachable-secret-value" not in str(exc.value)
    s3fs.S3FileSystem.clear_instance_cache()


def test_read_errors(tmp_path):
    store = Store.open(str(tmp_path))
    with pytest.raises(StorageError) as exc:
        store.read("output/u/j/result.json")
    assert exc.value.code == "storage.not_found"
    with pytest.raises(StorageError):
        read_url((tmp_path / "missing.jpg").as_uri())
    with pytest.raises(StorageError):
        store.path("../escape")


def test_missing_backend_has_an_install_hint():
    with pytest.raises(StorageError) as exc:
        Store.open("gcs://bucket/prefix")
    assert exc.value.code == "storage.backend_missing"
    assert "install" in exc.value.message.lower()


def test_store_needs_ids(tmp_path, page_png, keyring):
    from rythmiq import OptionsError

    with pytest.raises(OptionsError, match="ids"):
        process(page_png, store=Store.open(str(tmp_path)), keyring=keyring)
    assert list(tmp_path.iterdir()) == []


def test_s3_options_come_from_the_environment():
    env = {
        "RYTHMIQ_S3_ENDPOINT": "https://nyc3.digitaloceanspaces.com",
        "RYTHMIQ_S3_REGION": "nyc3",
        "SPACES_KEY": "spaces-key",
        "SPACES_SECRET": "spaces-secret",
        "AWS_ACCESS_KEY_ID": "aws-key",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
    }
    opts = s3_storage_options(env)
    assert opts["endpoint_url"] == "https://nyc3.digitaloceanspaces.com"
    assert opts["client_kwargs"] == {"region_name": "nyc3"}
    assert (opts["key"], opts["secret"]) == ("spaces-key", "spaces-secret")
    cfg = opts["config_kwargs"]
    assert cfg["request_checksum_calculation"] == "when_required"
    assert cfg["response_checksum_validation"] == "when_required"
    assert cfg["retries"] == {"total_max_attempts": 10, "mode": "adaptive"}
    del env["SPACES_KEY"], env["SPACES_SECRET"]
    assert s3_storage_options(env)["key"] == "aws-key"
    assert "key" not in s3_storage_options({})
    assert redact("x aws-secret y", env) == "x *** y"


def test_traversal_corpus_touches_nothing(tmp_path, s3_env):
    from test_layout import BAD_IDS, BAD_KEYS

    secret = tmp_path / "outside.txt"
    secret.write_text("private")
    for url in (str(tmp_path / "store"), f"s3://{s3_env['bucket']}/t"):
        store = Store.open(url)
        store.write("input/ok.png", b"fine")
        for key in BAD_KEYS:
            with pytest.raises(StorageError) as exc:
                store.read_input(key)
            assert exc.value.code == "storage.invalid_key"
        for value in BAD_IDS:
            with pytest.raises(StorageError):
                Ids("u1", "j1", value)
        assert store.read_input("input/ok.png") == b"fine"
        assert store.list() == ["input/ok.png"]
    assert secret.read_text() == "private"


def test_store_artifacts_records_the_ids_even_when_the_result_lacks_them(tmp_path, keyring):
    from rythmiq.persist import store_artifacts

    result = process(
        render_page(width=400, height=500, font_size=20, margin=20), engine=ScriptedEngine()
    )
    assert result.ids is None
    store = Store.open(str(tmp_path))
    store_artifacts(result, store, IDS, master=b"original", master_ext="png", keyring=keyring)
    stored = json.loads(store.read("output/user-1/job-1/result.json"))
    assert stored["ids"] == IDS.to_dict()


SIGNED = (
    "https://bucket.nyc3.digitaloceanspaces.com/input/scan.png"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20261128%2Fnyc3%2Fs3%2Faws4_request"
    "&X-Amz-Date=20261128T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE%2B%2Ftoken"
    "&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SIGNED,
            "https://bucket.nyc3.digitaloceanspaces.com/input/scan.png"
            "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
            "&X-Amz-Date=20261128T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
            "&X-Amz-Security-Token=***&X-Amz-Signature=***",
        ),
        (  # SigV2 presigned URLs
            "https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIAEXAMPLE&Expires=1&Signature=a%2Bb%3D",
            "https://b.s3.amazonaws.com/k?AWSAccessKeyId=***&Expires=1&Signature=***",
        ),
        (  # an Authorization header, as botocore's debug log prints it
            "'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261128/nyc3/s3/"
            "aws4_request, SignedHeaders=host;x-amz-date, Signature=0f1e2d'",
            "'Authorization': b'AWS4-HMAC-SHA256 Credential=***, "
            "SignedHeaders=host;x-amz-date, Signature=***'",
        ),
        (
            'x-amz-signature=abc and "X-Amz-Signature": x',
            'x-amz-signature=*** and "X-Amz-Signature": x',
        ),
        (  # a presigned URL quoted inside another URL's query
            "next=https%3A%2F%2Fh%2Fk%3FX-Amz-Signature%3Dabc123%26X-Amz-Date%3D1",
            "next=https%3A%2F%2Fh%2Fk%3FX-Amz-Signature%3D***%26X-Amz-Date%3D1",
        ),
        ("s3://AKIAEXAMPLE:wJalr/XUtnFEMI+K7MDENG@bucket/key", "s3://***@bucket/key"),
        ("s3://AKIAEXAMPLE:wJalr%2FXUtnFEMI@bucket/key", "s3://***@bucket/key"),
        ("https://user:pass@host:8443/path?q=1", "https://***@host:8443/path?q=1"),
        ("https://ghp_token123@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("error at 'http://u:p@h/x' (retry)", "error at 'http://***@h/x' (retry)"),
        # Left alone: no secret there.
        ("s3://bucket/scans/page@2x.png", "s3://bucket/scans/page@2x.png"),
        ("mail ops@example.com about s3://bucket/x", "mail ops@example.com about s3://bucket/x"),
        (
            "SignedHeaders=host;x-amz-date X-Amz-Date=1",
            "SignedHeaders=host;x-amz-date X-Amz-Date=1",
        ),
        ("NoSignature=1 the Credentials=2", "NoSignature=1 the Credentials=2"),
    ],
)
def test_redact_blanks_url_signatures_and_credentials(text, expected):
    assert redact(text, {}) == expected


def test_redact_blanks_secret_values_also_url_encoded():
    env = {"SPACES_SECRET": "wJalr/XUtnFEMI+K7MDENG", "SPACES_KEY": "abc"}  # too short to blank
    text = "a wJalr/XUtnFEMI+K7MDENG b wJalr%2FXUtnFEMI%2BK7MDENG c abc"
    assert redact(text, env) == "a *** b *** c abc"


def test_storage_errors_are_redacted_at_the_source():
    url = f"memory://rythmiq-redact-{os.getpid()}/missing.png?X-Amz-Signature=deadbeef42"
    with pytest.raises(StorageError) as exc:
        read_url(url)
    assert exc.value.code == "storage.not_found"
    assert "deadbeef42" not in str(exc.value) and "X-Amz-Signature=***" in exc.value.message


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAEXAMPLE:secret-value@bucket/prefix",
        "s3://token-only@bucket/prefix",
        "https://user:secret-value@127.0.0.1:9/scan.png",
    ],
)
def test_credentials_in_urls_are_refused_before_any_io(url):
    for call in (Store.open, read_url):
        with pytest.raises(StorageError) as exc:
            call(url)
        assert exc.value.code == "storage.invalid_url"
        assert "secret-value" not in str(exc.value) and "token-only" not in str(exc.value)
        assert "SPACES_KEY" in exc.value.message  # says where credentials go instead


def test_read_url_refuses_an_object_over_the_byte_limit_before_downloading(s3_env):
    import s3fs

    from rythmiq import InputError, ProcessOptions, process
    from rythmiq.storage import read_url, s3_storage_options

    fs = s3fs.S3FileSystem(**s3_storage_options())
    url = f"s3://{s3_env['bucket']}/input/big.bin"
    fs.pipe_file(url, b"x" * 5000)
    assert read_url(url, max_bytes=5000) == b"x" * 5000
    with pytest.raises(InputError) as info:
        read_url(url, max_bytes=4999)
    assert info.value.code == "input.too_large" and "4999-byte" in info.value.message
    with pytest.raises(InputError) as info:
        process(url, options=ProcessOptions(max_input_bytes=1024))
    assert info.value.code == "input.too_large"


def test_store_artifacts_keeps_its_old_public_name():
    import rythmiq.persist
    import rythmiq.storage

    assert rythmiq.storage.store_artifacts is rythmiq.persist.store_artifacts
    with pytest.raises(AttributeError, match="no_such_name"):
        rythmiq.storage.no_such_name  # noqa: B018


# --------------------------------------------------------------- credentials in URLs (#18)


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAX:part1/part2@bucket/key",  # a secret with "/": fsspec took AKIAX:part1
        "s3://AKIAX:secret@bucket/key",
        "s3://tok3nXYZ@bucket/key",
        "s3://AKIAX:1234/rest@bucket/key",  # a numeric first piece looks like a port
        "simplecache::s3://AKIAX:part1/part2@bucket/key",  # a chained URL
        "https://usr9q:pq7w/ss8z@host/x",
        "S3://AKIAX:part1/part2@bucket/key",
    ],
)
def test_credentials_in_a_url_are_refused_before_any_io_and_never_echoed(url):
    from rythmiq.storage import read_url

    for call in (lambda: Store.open(url), lambda: read_url(url)):
        with pytest.raises(StorageError) as exc:
            call()
        assert exc.value.code == "storage.invalid_url"
        authority = url.split("://", 1)[1].split("@")[0]
        for piece in authority.replace("/", ":").split(":"):
            assert len(piece) < 4 or piece not in str(exc.value), (piece, str(exc.value))


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/key@2x.png",
        "https://host:8080/a",
        "https://[::1]:9000/x",
        "https://[::1]/x@y",
        "file:///tmp/a:b/c@d",
        "memory://x/y",
    ],
)
def test_urls_without_credentials_pass_the_check(url):
    from rythmiq._redact import has_credentials

    assert not has_credentials(url)


def test_redact_blanks_every_piece_of_a_secret():
    from rythmiq._redact import redact

    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    env = {"AWS_SECRET_ACCESS_KEY": secret}
    before_slash, after_slash = secret.split("/")
    text = (
        f"NoSuchBucket: the bucket 'AKIAX:{before_slash}' does not exist; "
        f"key {after_slash[:20]}...; all: {secret}"
    )
    out = redact(text, env)
    for i in range(len(secret) - 7):
        assert secret[i : i + 8] not in out, secret[i : i + 8]
    assert out.startswith("NoSuchBucket: the bucket 'AKIAX:***' does not exist; key ***...")
    # Short pieces that happen to match stay: "NoSuch" and "AKIAX" are not 8 characters of it.
    assert redact("the EXAMPLE text", env) == "the EXAMPLE text"


def test_exists_means_an_object_is_stored_there_not_a_folder(tmp_path):
    store = Store.open(str(tmp_path))
    store.write("output/u1/j1/d1/result.json", b"{}")
    assert store.exists("output/u1/j1/d1/result.json")
    assert not store.exists("output/u1/j1/d1")  # a folder: no object
    assert not store.exists("output/u1/j1")
    assert not store.exists("output/u1/j1/missing.json")


def test_exists_on_an_object_store_prefix_is_false(s3_env):
    store = Store.open(f"s3://{s3_env['bucket']}/root")
    store.write("output/u1/j1/d1/result.json", b"{}")
    assert store.exists("output/u1/j1/d1/result.json")
    assert not store.exists("output/u1/j1/d1")


# ------------------------------- issue 18, finding 3: links out of a local store, odd files


@pytest.fixture
def linked(tmp_path):
    """A local store and, next to it, a folder ``outside`` holding ``secret.png``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"not for the store")
    root = tmp_path / "store"
    (root / "input").mkdir(parents=True)
    (root / "output").mkdir()
    return Store.open(str(root)), root, outside


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_linked_output_folder_is_not_written_through(linked, page_png, keyring):
    store, root, outside = linked
    (root / "output" / "u2").symlink_to(outside)  # absolute link out of the store
    with pytest.raises(StorageError) as exc:
        store.write("output/u2/j1/result.json", b"{}")
    assert exc.value.code == "storage.outside_root"
    ids = Ids("u2", "j1", "d1")
    with pytest.raises(StorageError) as exc:
        process(page_png, store=store, ids=ids, keyring=keyring, engine=ScriptedEngine())
    assert exc.value.code == "storage.outside_root"
    assert "output/u2/j1/" in exc.value.message and "symbolic link" in exc.value.message
    assert _tree(outside) == ["secret.png"]  # nothing was written there
    assert [p for p in root.rglob("*") if p.is_file()] == []  # the master was rolled back


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("input/secret.png", "{outside}/secret.png"),  # absolute, to a file
        ("input/secret.png", "../../outside/secret.png"),  # relative, climbing out
        ("input/sub", "{outside}"),  # a folder on the way
        ("input/sub", "../.."),  # the store's parent, through '..'
        ("input/step", "sub"),  # a chain: step -> sub -> outside
        ("input/secret.png", "/dev/zero"),  # a device: read until memory ran out
    ],
)
def test_a_link_out_of_a_local_store_is_refused_for_every_operation(linked, link, target):
    store, root, outside = linked
    (root / link).symlink_to(target.format(outside=outside))
    if link == "input/step":
        (root / "input/sub").symlink_to(outside)
        key = "input/step/secret.png"
    elif link == "input/sub":
        key = "input/sub/secret.png" if "outside" in target else "input/sub/outside/secret.png"
    else:
        key = link
    calls = {
        "read": lambda: store.read(key),
        "read_input": lambda: store.read_input(key),
        "exists": lambda: store.exists(key),
        "write": lambda: store.write(key, b"overwritten"),
        "delete": lambda: store.delete(key),
    }
    if key == link:  # the link is the key's last name: writing replaces the link itself,
        del calls["write"], calls["delete"]  # deleting removes it; neither touches its target
    for name, call in calls.items():
        with pytest.raises(StorageError) as exc:
            within(10, call)
        assert exc.value.code == "storage.outside_root", name
    assert store.list() == []  # the link is not listed as a key, nor what it points to
    if key == link:
        store.write(key, b"new")
        assert not (root / key).is_symlink() and store.read(key) == b"new"
        store.delete(key)
        assert not (root / key).exists()
    assert (outside / "secret.png").read_bytes() == b"not for the store"
    assert _tree(outside) == ["secret.png"]


def test_links_inside_a_local_store_are_followed(linked):
    store, root, _ = linked
    store.write("input/real/a.png", b"a")
    (root / "input/alias").symlink_to("real")  # relative, a folder
    (root / "input/b.png").symlink_to(root / "input/real/a.png")  # absolute, inside
    (root / "input/real/up").symlink_to("../../input")  # climbs, but stays inside
    assert store.read_input("input/alias/a.png") == b"a"
    assert store.read_input("input/b.png") == b"a"
    assert store.read_input("input/real/up/real/a.png") == b"a"
    assert store.exists("input/alias/a.png") and store.exists("input/b.png")
    store.write("input/alias/c.png", b"c")
    assert (root / "input/real/c.png").read_bytes() == b"c"
    # A link to a file inside is listed; a linked folder is not entered.
    assert store.list("input/") == ["input/b.png", "input/real/a.png", "input/real/c.png"]
    store.delete("input/b.png")  # the link goes, not the file it points to
    assert not (root / "input/b.png").is_symlink() and store.exists("input/real/a.png")


def test_a_link_loop_is_a_typed_error(linked):
    store, root, _ = linked
    (root / "input/a").symlink_to("b")
    (root / "input/b").symlink_to("a")
    for call in (lambda: store.read("input/a/x.png"), lambda: store.exists("input/a")):
        with pytest.raises(StorageError) as exc:
            within(10, call)
        assert exc.value.code == "storage.read_failed"


def test_only_regular_files_are_read_from_a_local_store(linked):
    store, root, _ = linked
    os.mkfifo(root / "input/f.png")
    (root / "input/d.png").mkdir()
    for key in ("input/f.png", "input/d.png"):
        assert not store.exists(key)  # not an object
        with pytest.raises(StorageError) as exc:
            within(10, lambda key=key: store.read(key))  # a FIFO must not block the read
        assert exc.value.code == "storage.not_regular"
        with pytest.raises(InputError) as exc:
            within(10, lambda key=key: store.read_input(key))
        assert exc.value.code == "input.not_regular"
    assert store.list() == []


def test_a_local_store_read_is_bounded(linked):
    store, root, _ = linked
    with (root / "input/big.png").open("wb") as fh:
        fh.truncate(10 * 1024**3)  # sparse: 10 GiB that is never read
    with pytest.raises(InputError) as exc:
        within(10, lambda: store.read_input("input/big.png", max_bytes=1024))
    assert exc.value.code == "input.too_large"
    store.write("input/small.png", b"x" * 1024)
    assert store.read_input("input/small.png", max_bytes=1024) == b"x" * 1024


def test_cleanup_does_not_delete_through_a_linked_folder(linked, page_png, keyring):
    store, root, outside = linked
    # Files an earlier run would leave, but outside the store, behind a link in the job's
    # output folder: the re-run's removal of stale outputs and of temporary files, which
    # lists the folder, must not follow the link.
    (outside / "0002").mkdir()
    (outside / "0002" / "preview.jpg").write_bytes(b"keep")
    (outside / f".result.json.{'0' * 32}.tmp").write_bytes(b"keep")
    (root / "output/u1/j1").mkdir(parents=True)
    (root / "output/u1/j1/pages").symlink_to(outside)
    process(
        page_png,
        store=store,
        ids=Ids("u1", "j1", "d1"),
        keyring=keyring,
        engine=ScriptedEngine(),
        options=ProcessOptions(rotate=False),
    )
    assert store.remove_leftovers("output/u1/j1") == 0
    assert _tree(outside) == [
        f".result.json.{'0' * 32}.tmp",
        "0002",
        "0002/preview.jpg",
        "secret.png",
    ]
    assert not any(k.startswith("output/u1/j1/pages") for k in store.list())


LINK_TARGETS = ["..", "../..", "../../..", ".", "a", "../a", "./c/../a", "a/f", "/dev/zero"]


def _random_tree(rng, root, outside):
    """Folders, files (b"in") and links, some of them out of ``root``, in ``root``."""
    folders = [root]
    targets = [*LINK_TARGETS, str(outside), str(outside / "f"), str(root), str(root / "a")]
    for _ in range(rng.randint(1, 7)):
        path = rng.choice(folders) / rng.choice("abcf")
        if os.path.lexists(path):
            continue
        roll = rng.random()
        if roll < 0.3:
            path.mkdir()
            folders.append(path)
        elif roll < 0.5:
            path.write_bytes(b"in")
        else:
            path.symlink_to(rng.choice(targets))


def test_random_link_layouts_never_reach_outside_the_store(tmp_path):
    # What os.path.realpath says of each key decides: a key whose every step stays inside
    # reads as the file it resolves to; one that leaves is refused; nothing outside changes.
    import random
    import shutil

    rng = random.Random(18)
    outside = tmp_path / "outside"
    for _ in range(60):
        shutil.rmtree(tmp_path, ignore_errors=True)
        root = tmp_path / "store"
        (outside / "d").mkdir(parents=True)
        root.mkdir()
        (outside / "f").write_bytes(b"out")
        _random_tree(rng, root, outside)
        store, real_root = Store.open(str(root)), os.path.realpath(root)
        keys = ["/".join(rng.choice("abcf") for _ in range(rng.randint(1, 4))) for _ in range(25)]
        for key in keys:
            real = os.path.realpath(root / key)
            try:
                data = store.read(key)
            except StorageError as exc:
                assert exc.code in {
                    "storage.outside_root",
                    "storage.not_found",
                    "storage.not_regular",
                    "storage.read_failed",  # a loop
                }, exc
                regular_inside = os.path.isfile(real) and real.startswith(real_root + "/")
                steps = [os.path.realpath(root / "/".join(key.split("/")[:i])) for i in range(1, 5)]
                left = any(not f"{s}/".startswith(f"{real_root}/") for s in steps)
                assert not regular_inside or left, (key, exc.code)
            else:
                assert real.startswith(real_root + "/") and data == b"in", key
        for key in keys:  # what a write or a delete does inside, it does not do outside
            with contextlib.suppress(StorageError):
                store.write(key, b"new")
            with contextlib.suppress(StorageError):
                store.delete(key)
        store.list()
        assert _tree(outside) == ["d", "f"] and (outside / "f").read_bytes() == b"out"


# ------------------------------------------ issue 18, finding 8: every store-open failure


@pytest.fixture
def odd_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # zip://x.zip opens the current folder
    (tmp_path / "page.png").write_bytes(b"\x89PNG not a zip")
    return {
        "unknown protocol": ("nosuch://x", "storage.invalid_url"),
        "a URL that says too little": ("reference://", "storage.invalid_url"),
        "zip of no file": ("zip://x.zip", "storage.open_failed"),
        "zip of a missing file": (f"zip::{tmp_path}/missing.zip", "storage.not_found"),
        "zip of a file that is no zip": (f"zip::{tmp_path}/page.png", "storage.open_failed"),
        "tar of a file that is no tar": (f"tar::{tmp_path}/page.png", "storage.open_failed"),
        "ftp refused": ("ftp://127.0.0.1:1/x", "storage.open_failed"),
        "ftp refused, cached": ("simplecache::ftp://127.0.0.1:1/x", "storage.open_failed"),
        "dir with no target": ("dir://x", "storage.open_failed"),
        "a malformed host": ("ftp://[::1/x", "storage.invalid_url"),
        "a regular file": (str(tmp_path / "page.png"), "storage.open_failed"),
        "a file URL of a file": ((tmp_path / "page.png").as_uri(), "storage.open_failed"),
        "below a file": (str(tmp_path / "page.png" / "sub"), "storage.open_failed"),
        "a device": ("/dev/null", "storage.open_failed"),
        "a NUL": (f"{tmp_path}/a\x00b", "storage.invalid_url"),
    }


def test_every_failure_to_open_a_store_is_a_storage_error(odd_urls):
    for name, (url, code) in odd_urls.items():
        with pytest.raises(StorageError) as exc:
            within(30, lambda url=url: Store.open(url))
        assert exc.value.code == code, (name, exc.value)
        assert "Traceback" not in exc.value.message and "\n" not in exc.value.message
    with pytest.raises(StorageError) as exc:
        Store.open(odd_urls["a regular file"][0])
    assert exc.value.message.endswith("page.png': it is a file, not a folder")
    assert Store.open(str(Path.cwd() / "new-folder")).url.endswith("new-folder")  # not made yet


def test_every_failure_to_open_an_input_url_is_a_typed_error(odd_urls, tmp_path):
    for name, (url, _) in odd_urls.items():
        if url.startswith((str(tmp_path), "file:")):
            continue  # a file: read_url reads it
        with pytest.raises((StorageError, InputError)) as exc:
            within(30, lambda url=url: read_url(url, max_bytes=1024))
        assert exc.value.code.startswith(("storage.", "input.")), (name, exc.value)
    with pytest.raises(InputError) as exc:
        within(10, lambda: read_url("/dev/zero", max_bytes=1024))
    assert exc.value.code == "input.not_regular"


def test_store_open_errors_are_redacted(monkeypatch):
    secret = "sEcReT-ftp-pass-0123456789"
    monkeypatch.setenv("SPACES_SECRET", secret)
    with pytest.raises(StorageError) as exc:
        Store.open(f"ftp://127.0.0.1:1/{secret}")
    assert exc.value.code == "storage.open_failed" and "ConnectionRefusedError" in str(exc.value)
    assert secret not in str(exc.value) and "ftp://127.0.0.1:1/***" in str(exc.value)
