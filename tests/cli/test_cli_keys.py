"""`rythmiq keygen` and `rythmiq decrypt`, run as a real subprocess."""

from __future__ import annotations

from _helpers import run_cli as run


def _decrypt(store, user_id, document_id, target, env, *more):
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
