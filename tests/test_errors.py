from __future__ import annotations

import pytest

from rythmiq import (
    CryptoError,
    ExitCode,
    InputError,
    ModelError,
    OptionsError,
    PayloadError,
    RythmiqError,
    StorageError,
)


@pytest.mark.parametrize(
    ("cls", "exit_code", "family"),
    [
        (InputError, ExitCode.INPUT, "input"),
        (ModelError, ExitCode.MODEL, "model"),
        (StorageError, ExitCode.STORAGE, "storage"),
        (CryptoError, ExitCode.CRYPTO, "crypto"),
        (PayloadError, ExitCode.PAYLOAD, "payload"),
        (OptionsError, ExitCode.USAGE, "options"),
    ],
)
def test_every_error_has_a_family_code_and_exit_code(cls, exit_code, family):
    err = cls("something is wrong")
    assert isinstance(err, RythmiqError)
    assert err.exit_code == exit_code
    assert err.code.split(".")[0] == family
    assert err.to_dict() == {
        "code": err.code,
        "message": "something is wrong",
        "exit_code": exit_code,
    }
    assert str(err) == f"[{err.code}] something is wrong"


def test_specific_code_must_stay_in_its_family():
    assert InputError("x", code="input.too_large").code == "input.too_large"
    with pytest.raises(ValueError, match="does not belong"):
        InputError("x", code="model.not_found")


def test_options_error_is_also_a_value_error():
    with pytest.raises(ValueError):
        raise OptionsError("bad")


def test_exit_codes_are_distinct():
    values = [int(c) for c in ExitCode]
    assert len(values) == len(set(values))


def test_error_dict_is_the_one_json_form_and_redacts(monkeypatch):
    from rythmiq._errors import error_dict

    monkeypatch.setenv("SPACES_SECRET", "s3cr3t/With+Slash")
    typed = error_dict(StorageError("denied for s3cr3t/With+Slash", code="storage.permission"))
    assert typed == {"code": "storage.permission", "message": "denied for ***", "exit_code": 7}
    other = error_dict(KeyError("s3cr3t/With+Slash"))
    assert other == {"code": "internal", "message": "KeyError: '***'", "exit_code": 1}


def test_exit_code_of_is_the_one_mapping_to_process_status():
    from rythmiq._errors import error_dict, exit_code_of

    for err in (InputError("x"), StorageError("x"), OptionsError("x"), RythmiqError("x")):
        assert exit_code_of(err) == int(err.exit_code) == error_dict(err)["exit_code"]
    assert exit_code_of(ValueError("x")) == 1 == error_dict(ValueError("x"))["exit_code"]
    assert exit_code_of(KeyboardInterrupt()) == 130
