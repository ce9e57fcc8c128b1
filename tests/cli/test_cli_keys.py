"""`rythmiq keygen` and `rythmiq decrypt`, run as a real subprocess."""

from __future__ import annotations

from _helpers import run_cli as run


def _decrypt(store, user_id, document_id, target, env, *more, **kw):
    return run(
        "decrypt",
        "--store",
        str(store),
        "--user-id",
        user_id,
        "--document-id",
        document_id,
        *more,
        "-o",
        str(target),
        env=env,
        **kw,
    )


def test_decrypt_round_trip_and_rotation(page_file, tmp_path, cli_env):
    store = tmp_path / "store"
    out = run(
        "process",
        "--no-ocr",
        "--out",
        store.as_uri(),
        "--user-id",
        "u7",
        "--document-id",
        "d7",
        str(page_file),
        env=cli_env,
    )
    assert out.returncode == 0, out.stderr
    target = tmp_path / "master.png"
    out = _decrypt(store, "u7", "d7", target, cli_env)
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() == page_file.read_bytes()
    # The wrong document id finds no master; a forged path is refused before any I/O.
    out = _decrypt(store, "u7", "d8", tmp_path / "x", cli_env)
    assert out.returncode == 7 and not (tmp_path / "x").exists()
    out = _decrypt(store, "../u7", "d7", tmp_path / "x", cli_env)
    assert out.returncode == 7 and "storage.invalid_key" in out.stderr
    # Rotation keeps old masters readable.
    out = run("keygen", "--rotate", env=cli_env)
    assert out.returncode == 0, out.stderr
    out = _decrypt(store, "u7", "d7", tmp_path / "again.png", cli_env)
    assert out.returncode == 0 and (tmp_path / "again.png").read_bytes() == target.read_bytes()
    # keygen refuses to overwrite the keyring without --force.
    out = run("keygen", env=cli_env)
    assert out.returncode == 8 and "crypto.keyring_exists" in out.stderr


def test_decrypt_without_a_keyring_fails_clearly(tmp_path, cli_env):
    out = _decrypt(tmp_path, "u", "d", tmp_path / "x", cli_env, "--ext", "png")
    assert out.returncode == 8 and "crypto.no_keyring" in out.stderr


# ---------------------------------------------- issue 18: decrypt -o writes exactly there


def _stored(page_file, store, env, *more):
    out = run(
        "process",
        "--no-ocr",
        "--out",
        store.as_uri(),
        "--user-id",
        "u7",
        "--job-id",
        "j7",
        "--document-id",
        "d7",
        *more,
        str(page_file),
        env=env,
    )
    assert out.returncode == 0, out.stderr


def test_decrypt_writes_a_new_or_regular_file_with_mode_0600(page_file, tmp_path, cli_env):
    import os
    import stat

    store = tmp_path / "store"
    _stored(page_file, store, cli_env)
    target = tmp_path / "master.png"
    out = _decrypt(store, "u7", "d7", target, cli_env, umask=0o022)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # An existing, world-readable file is replaced by a private one, not written into.
    old = tmp_path / "old.png"
    old.write_bytes(b"old")
    old.chmod(0o644)
    before = old.stat().st_ino
    out = _decrypt(store, "u7", "d7", old, cli_env, umask=0o022)
    assert out.returncode == 0, out.stderr
    assert old.read_bytes() == page_file.read_bytes() and old.stat().st_ino != before
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config",
        "master.png",
        "old.png",
        "store",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert os.path.isfile(target)


def test_decrypt_refuses_a_symbolic_link_as_its_output(page_file, tmp_path, cli_env):
    store = tmp_path / "store"
    _stored(page_file, store, cli_env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "target.png").write_bytes(b"keep me")
    link = tmp_path / "link.png"
    link.symlink_to(elsewhere / "target.png")
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(elsewhere / "nothing-here.png")
    for path in (link, dangling):
        out = _decrypt(store, "u7", "d7", path, cli_env)
        assert out.returncode == 2, out.stderr
        assert "options.unsafe_output" in out.stderr and "symbolic link" in out.stderr
        assert path.is_symlink()
    # Nothing was written through the links, nor under their names next to their targets.
    assert sorted(p.name for p in elsewhere.iterdir()) == ["target.png"]
    assert (elsewhere / "target.png").read_bytes() == b"keep me"


def test_decrypt_never_replaces_a_file_that_is_not_a_regular_file(page_file, tmp_path, cli_env):
    import os
    import stat

    store = tmp_path / "store"
    _stored(page_file, store, cli_env)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = _decrypt(store, "u7", "d7", fifo, cli_env)
    assert out.returncode == 2 and "options.unsafe_output" in out.stderr, out.stderr
    assert "a FIFO" in out.stderr and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    # Refused before the store is even opened: nothing to decrypt at this one either.
    out = _decrypt(tmp_path / "no-store", "u7", "d7", fifo, cli_env, "--ext", "png")
    assert out.returncode == 2 and "options.unsafe_output" in out.stderr, out.stderr


# ------------------------------------------ issue 18: process --encrypt all, decrypt --key


def test_encrypt_all_stores_every_output_encrypted_and_decrypt_opens_each(
    page_file, tmp_path, cli_env
):
    import json

    store = tmp_path / "store"
    _stored(page_file, store, cli_env, "--hocr", "--pdf", "--encrypt", "all")
    folder = store / "output" / "u7" / "j7"
    assert sorted(p.name for p in folder.iterdir()) == [
        "normalized.jpg.enc",
        "preview.jpg",
        "result.json",
        "searchable.pdf.enc",
        "text.hocr.enc",
    ]
    stored = json.loads((folder / "result.json").read_text())
    assert stored["encrypt"] == "all"
    assert [(a["kind"], a["encrypted"]) for a in stored["artifacts"]] == [
        ("master", True),
        ("normalized", True),
        ("preview", False),
        ("hocr", True),
        ("pdf", True),
    ]
    starts = {"normalized.jpg.enc": b"\xff\xd8\xff", "searchable.pdf.enc": b"%PDF"}
    starts["text.hocr.enc"] = b"<?xml"
    for name, magic in starts.items():
        target = tmp_path / name.removesuffix(".enc")
        out = _decrypt(store, "u7", "d7", target, cli_env, "--key", f"output/u7/j7/{name}")
        assert out.returncode == 0, out.stderr
        assert target.read_bytes().startswith(magic), name
    # The master form still works, and --key names it too.
    out = _decrypt(
        store, "u7", "d7", tmp_path / "m.png", cli_env, "--key", "master/u7/d7/master.png.enc"
    )
    assert out.returncode == 0 and (tmp_path / "m.png").read_bytes() == page_file.read_bytes()


def test_decrypt_refuses_a_key_that_is_not_one_of_the_document_s_encrypted_artifacts(
    page_file, tmp_path, cli_env
):
    import shutil

    store = tmp_path / "store"
    _stored(page_file, store, cli_env, "--pdf", "--encrypt", "all")
    for key in ("output/u7/j7/preview.jpg", "output/u8/j7/searchable.pdf.enc", "../x.enc"):
        out = _decrypt(store, "u7", "d7", tmp_path / "x", cli_env, "--key", key)
        assert out.returncode == 7 and "storage.invalid_key" in out.stderr, (key, out.stderr)
    # One artifact's ciphertext put in another's place does not decrypt there.
    folder = store / "output" / "u7" / "j7"
    shutil.copy(folder / "normalized.jpg.enc", folder / "searchable.pdf.enc")
    key = "output/u7/j7/searchable.pdf.enc"
    out = _decrypt(store, "u7", "d7", tmp_path / "x", cli_env, "--key", key)
    assert out.returncode == 8 and "crypto.auth_failed" in out.stderr, out.stderr
    assert not (tmp_path / "x").exists()
    out = _decrypt(store, "u7", "d7", tmp_path / "x", cli_env, "--key", key, "--ext", "png")
    assert out.returncode == 2, out.stderr


def test_encrypt_needs_out(page_file, cli_env):
    out = run("process", "--no-ocr", "--encrypt", "all", str(page_file), env=cli_env)
    assert out.returncode == 2 and "--encrypt" in out.stderr, out.stderr
    out = run("process", "--no-ocr", "--out", "x", "--encrypt", "some", str(page_file), env=cli_env)
    assert out.returncode == 2, out.stderr
