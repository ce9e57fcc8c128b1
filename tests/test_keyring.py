from __future__ import annotations

import base64
import copy
import dataclasses
import json
import logging
import os
import pickle
import stat
import sys

import pytest

from rythmiq import CryptoError, OptionsError
from rythmiq.keyring import (
    KEY_SIZE,
    Keyring,
    LoadedKeyring,
    default_keyring_path,
    load_keyring,
    save_keyring,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def secret_forms(keyring: Keyring) -> list[str]:
    """Every way a key could show up in text."""
    out = []
    for key_id in keyring.key_ids:
        key = keyring.key(key_id)
        out += [
            base64.b64encode(key).decode(),
            base64.b64encode(key).decode().rstrip("="),
            base64.urlsafe_b64encode(key).decode().rstrip("="),
            key.hex(),
            repr(key)[2:-1],
        ]
    return out


def assert_no_secret(text: str, keyring: Keyring) -> None:
    for form in secret_forms(keyring):
        assert form not in text


def env_for(tmp_path, **extra: str) -> dict[str, str]:
    # Never the real home: every lookup stays inside tmp_path.
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **extra}


# -- the Keyring object ----------------------------------------------------------------------


def test_generate_makes_one_random_primary_key():
    a, b = Keyring.generate(), Keyring.generate()
    assert a.key_ids == (a.primary_id,)
    assert a.primary_id.startswith("k-") and len(a.primary_id.split("-")) == 3
    assert len(a.key(a.primary_id)) == KEY_SIZE
    assert a.primary_id != b.primary_id
    assert a.key(a.primary_id) != b.key(b.primary_id)
    assert Keyring.generate("mine").key_ids == ("mine",)


def test_rotate_adds_a_primary_and_keeps_old_keys():
    ring = Keyring.generate("k1")
    rotated = ring.rotate("k2")
    assert rotated.primary_id == "k2"
    assert rotated.key_ids == ("k1", "k2")
    assert rotated.key("k1") == ring.key("k1")
    assert rotated.key("k2") != ring.key("k1")
    assert ring.key_ids == ("k1",)  # the original is unchanged
    auto = rotated.rotate()
    assert auto.primary_id not in ("k1", "k2") and auto.key_ids[:2] == ("k1", "k2")
    with pytest.raises(OptionsError, match="already"):
        rotated.rotate("k1")


def test_retire_drops_an_old_key_only():
    ring = Keyring.generate("k1").rotate("k2")
    assert ring.retire("k1").key_ids == ("k2",)
    with pytest.raises(OptionsError, match="primary"):
        ring.retire("k2")
    with pytest.raises(OptionsError, match="not in"):
        ring.retire("k9")


def test_unknown_key_id_is_crypto_unknown_key():
    ring = Keyring.generate("k1")
    with pytest.raises(CryptoError, match="'k9'") as err:
        ring.key("k9")
    assert err.value.code == "crypto.unknown_key"
    assert "k9" not in ring and "k1" in ring


def test_json_round_trip_and_format():
    ring = Keyring.generate("k1").rotate("k2")
    text = ring.to_json()
    doc = json.loads(text)
    assert doc == {
        "version": 1,
        "primary": "k2",
        "keys": {k: base64.b64encode(ring.key(k)).decode() for k in ("k1", "k2")},
    }
    again = Keyring.from_json(text)
    assert again == ring and hash(again) == hash(ring)
    assert again.key_ids == ring.key_ids
    assert Keyring.from_json(text.encode()) == ring


def test_equality_compares_key_bytes():
    ring = Keyring.generate("k1")
    same = Keyring({"k1": ring.key("k1")}, "k1")
    other_bytes = Keyring.generate("k1")
    assert ring == same
    assert ring != other_bytes
    assert hash(ring) == hash(other_bytes)  # the hash covers ids only
    assert ring != Keyring({"k1": ring.key("k1"), "k2": bytes(32)}, "k1")
    assert ring != "k1"


def test_keyring_is_immutable_and_picklable():
    ring = Keyring.generate("k1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ring._primary_id = "k2"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ring._keys
    with pytest.raises(TypeError):
        ring._keys["k2"] = bytes(32)  # type: ignore[index]
    assert pickle.loads(pickle.dumps(ring)) == ring
    assert copy.deepcopy(ring) == ring


def test_repr_str_and_errors_show_ids_only():
    ring = Keyring.generate("k1").rotate("k2")
    loaded = LoadedKeyring(ring, "env", None, False)
    for text in (repr(ring), str(ring), f"{ring}", repr(loaded), json.dumps(loaded.to_dict())):
        assert "k1" in text and "k2" in text
        assert_no_secret(text, ring)
    assert repr(ring) == "Keyring(primary_id='k2', key_ids=('k1', 'k2'))"


@pytest.mark.parametrize(
    ("keys", "primary", "match"),
    [
        ({}, "k1", "at least one key"),
        ({"k1": bytes(31)}, "k1", "32 bytes"),
        ({"k1": "x" * 32}, "k1", "32 bytes"),
        ({"bad id": bytes(32)}, "bad id", "key id #1"),
        ({"-lead": bytes(32)}, "-lead", "key id #1"),
        ({"k" * 65: bytes(32)}, "k" * 65, "key id #1"),
        ({"k1": bytes(32)}, "k2", "primary_id 'k2'"),
    ],
)
def test_constructor_validates(keys, primary, match):
    with pytest.raises(OptionsError, match=match):
        Keyring(keys, primary)


def _doc(**override) -> str:
    ring = Keyring.generate("k1")
    doc = json.loads(ring.to_json())
    doc.update(override)
    return json.dumps(doc)


B64 = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "JSON"),
        ("{", "JSON"),
        (b"\xff\xfe", "JSON"),
        ("null", "JSON object"),
        ("[]", "JSON object"),
        (_doc(version=2), "version"),
        (_doc(version=True), "version"),
        (_doc(extra=1), "exactly"),
        (_doc(keys={}), "non-empty"),
        (_doc(keys=[B64]), "non-empty"),
        (_doc(keys={"k1": 5}), "base64"),
        (_doc(keys={"k1": "not base64!"}), "base64"),
        (_doc(keys={"k1": base64.b64encode(bytes(16)).decode()}), "16 bytes"),
        (_doc(keys={"k/1": B64}, primary="k/1"), "key id #1"),
        (_doc(keys={"k1": B64}, primary="k2"), "names a key id that is not in"),
        (_doc(keys={"k1": B64}, primary=None), "primary"),
        ('{"version": 1, "version": 1, "primary": "k1", "keys": {}}', "repeats"),
        (
            f'{{"version": 1, "primary": "k1", "keys": {{"k1": "{B64}", "k1": "{B64}"}}}}',
            "repeats",
        ),
    ],
)
def test_from_json_is_strict(text, match):
    with pytest.raises(CryptoError, match=match) as err:
        Keyring.from_json(text)
    assert err.value.code == "crypto.bad_keyring"
    assert err.value.__cause__ is None and err.value.__context__ is None


def test_invalid_keyring_errors_never_quote_secrets():
    ring = Keyring.generate("k1")
    key_b64 = base64.b64encode(ring.key("k1")).decode()
    bad_docs = [
        # A key where the id belongs, and an id where the key belongs.
        json.dumps({"version": 1, "primary": "k1", "keys": {key_b64: "k1"}}),
        json.dumps({"version": 1, "primary": key_b64, "keys": {"k1": key_b64}}),
        json.dumps({"version": 1, "primary": "k1", "keys": {"k1": key_b64[:-4]}}),
        json.dumps({"version": 1, "primary": "k1", "keys": {"k1": key_b64 + "AAAA"}}),
        ring.to_json()[:-3],  # cut short: JSONDecodeError would carry the whole text
    ]
    for text in bad_docs:
        with pytest.raises(CryptoError) as err:
            Keyring.from_json(text)
        shown = str(err.value) + repr(err.value) + repr(err.value.__cause__)
        assert_no_secret(shown, ring)
        assert err.value.code == "crypto.bad_keyring"


# -- loading ---------------------------------------------------------------------------------


def test_default_path_follows_xdg(tmp_path):
    assert default_keyring_path(environ={"XDG_CONFIG_HOME": "/cfg", "HOME": "/h"}) == (
        "/cfg/rythmiq/keyring.json"
    )
    assert default_keyring_path(environ={"HOME": "/h"}) == "/h/.config/rythmiq/keyring.json"
    # A relative XDG_CONFIG_HOME is ignored, as the spec says.
    assert default_keyring_path(environ={"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == (
        "/h/.config/rythmiq/keyring.json"
    )


def test_no_keyring_without_create(tmp_path):
    env = env_for(tmp_path)
    with pytest.raises(CryptoError) as err:
        load_keyring(environ=env)
    assert err.value.code == "crypto.no_keyring"
    for hint in ("RYTHMIQ_KEYRING", "RYTHMIQ_KEYRING_FILE", "rythmiq keygen"):
        assert hint in err.value.message
    assert not (tmp_path / "xdg").exists()  # nothing was created


@posix_only
def test_create_writes_0600_once_then_loads(tmp_path, caplog):
    env = env_for(tmp_path)
    with caplog.at_level(logging.INFO, logger="rythmiq.keyring"):
        first = load_keyring(environ=env, create=True)
    path = tmp_path / "xdg" / "rythmiq" / "keyring.json"
    assert first.created and first.source == "default" and first.path == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["keyring.json"]  # no temp left over
    assert "created a new keyring" in caplog.text
    assert_no_secret(caplog.text, first.keyring)

    second = load_keyring(environ=env, create=True)
    assert not second.created and second.source == "default"
    assert second.keyring == first.keyring
    assert load_keyring(environ=env).keyring == first.keyring


def test_env_beats_file_beats_default(tmp_path):
    default = load_keyring(environ=env_for(tmp_path), create=True).keyring
    file_ring = Keyring.generate("from-file")
    named = save_keyring(file_ring, tmp_path / "named.json")
    env_ring = Keyring.generate("from-env")
    encoded = base64.b64encode(env_ring.to_json().encode()).decode()

    both = env_for(tmp_path, RYTHMIQ_KEYRING=encoded, RYTHMIQ_KEYRING_FILE=named)
    got = load_keyring(environ=both)
    assert (got.source, got.path, got.created, got.keyring) == ("env", None, False, env_ring)

    got = load_keyring(environ=env_for(tmp_path, RYTHMIQ_KEYRING_FILE=named))
    assert (got.source, got.path, got.keyring) == ("file", named, file_ring)

    # Empty variables count as unset.
    got = load_keyring(environ=env_for(tmp_path, RYTHMIQ_KEYRING="", RYTHMIQ_KEYRING_FILE=""))
    assert (got.source, got.keyring) == ("default", default)


def test_load_reads_os_environ_by_default(tmp_path, monkeypatch):
    ring = Keyring.generate("from-env")
    monkeypatch.setenv("RYTHMIQ_KEYRING", base64.b64encode(ring.to_json().encode()).decode())
    assert load_keyring().keyring == ring


def test_bad_env_keyring_is_bad_keyring_without_secrets(tmp_path):
    ring = Keyring.generate("k1")
    for value in ("not base64 at all!", ring.to_json(), base64.b64encode(b"{}").decode()):
        with pytest.raises(CryptoError, match="RYTHMIQ_KEYRING") as err:
            load_keyring(environ=env_for(tmp_path, RYTHMIQ_KEYRING=value))
        assert err.value.code == "crypto.bad_keyring"
        assert_no_secret(str(err.value), ring)


def test_missing_or_invalid_named_file(tmp_path):
    missing = str(tmp_path / "nope.json")
    with pytest.raises(CryptoError, match=r"nope\.json") as err:
        load_keyring(environ=env_for(tmp_path, RYTHMIQ_KEYRING_FILE=missing))
    assert err.value.code == "crypto.no_keyring"
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1}')
    with pytest.raises(CryptoError, match=r"broken\.json") as err:
        load_keyring(environ=env_for(tmp_path, RYTHMIQ_KEYRING_FILE=str(broken)))
    assert err.value.code == "crypto.bad_keyring"


@posix_only
def test_group_readable_keyring_logs_a_warning(tmp_path, caplog):
    env = env_for(tmp_path)
    path = load_keyring(environ=env, create=True).path
    assert path is not None
    with caplog.at_level(logging.WARNING, logger="rythmiq.keyring"):
        load_keyring(environ=env)
    assert caplog.records == []
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="rythmiq.keyring"):
        loaded = load_keyring(environ=env)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "chmod 600" in caplog.text and "644" in caplog.text
    assert_no_secret(caplog.text, loaded.keyring)


@posix_only
def test_save_keyring_is_0600_and_refuses_to_overwrite(tmp_path):
    ring = Keyring.generate("k1")
    path = tmp_path / "new" / "keyring.json"
    assert save_keyring(ring, path) == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.from_json(path.read_text()) == ring

    other = Keyring.generate("k2")
    with pytest.raises(CryptoError, match="overwrite=True") as err:
        save_keyring(other, path)
    assert err.value.code == "crypto.keyring_exists"
    assert Keyring.from_json(path.read_text()) == ring  # untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["keyring.json"]

    save_keyring(other, path, overwrite=True)
    assert Keyring.from_json(path.read_text()) == other
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_keyring_where_no_directory_can_be_made_is_keyring_io(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(CryptoError) as err:
        save_keyring(Keyring.generate("k1"), blocker / "rythmiq" / "keyring.json")
    assert err.value.code == "crypto.keyring_io"
    assert "a-file" in err.value.message


def test_create_loses_a_race_gracefully(tmp_path, monkeypatch):
    # Another process writes the default keyring between our existence check and our write:
    # we must load theirs, not replace it (their keys may already wrap objects).
    env = env_for(tmp_path)
    theirs = Keyring.generate("theirs")
    path = default_keyring_path(environ=env)
    real_save = save_keyring

    def racing_save(keyring, target, *, overwrite=False):
        real_save(theirs, target)
        return real_save(keyring, target, overwrite=overwrite)

    monkeypatch.setattr("rythmiq.keyring.save_keyring", racing_save)
    got = load_keyring(environ=env, create=True)
    assert (got.created, got.path, got.keyring) == (False, path, theirs)


def test_save_never_clobbers_a_file_that_appears_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "keyring.json"
    real_link = os.link

    def link_after_someone_else(src, dst):
        path.write_text("theirs")
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_someone_else)
    with pytest.raises(CryptoError) as err:
        save_keyring(Keyring.generate("k1"), path)
    assert err.value.code == "crypto.keyring_exists"
    assert path.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]


def test_save_without_hard_links_still_writes(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    ring = Keyring.generate("k1")
    path = tmp_path / "keyring.json"
    save_keyring(ring, path)
    assert Keyring.from_json(path.read_text()) == ring
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]


@pytest.mark.parametrize("form", ["hex", "base64url"])
def test_a_keyring_with_id_and_key_swapped_never_quotes_the_key(form):
    # A hex (or unpadded base64url) key matches the key-id pattern, so it parses as an id.
    raw = bytes(range(32))
    key = raw.hex() if form == "hex" else base64.urlsafe_b64encode(raw).decode().rstrip("=")
    text = json.dumps({"version": 1, "primary": key, "keys": {key: "k1"}})
    with pytest.raises(CryptoError) as exc:
        Keyring.from_json(text)
    assert exc.value.code == "crypto.bad_keyring"
    assert key not in str(exc.value) and key[:8] not in str(exc.value)
    assert "swapped" in str(exc.value)
    # The primary named wrongly is not quoted either.
    good = base64.b64encode(raw).decode()
    text = json.dumps({"version": 1, "primary": key, "keys": {"k1": good}})
    with pytest.raises(CryptoError) as exc:
        Keyring.from_json(text)
    assert key[:8] not in str(exc.value) and "swapped" in str(exc.value)
