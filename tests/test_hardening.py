"""Regression tests of the second hostile-testing round (issue 18), one group per finding.

Findings with a natural home are tested there instead: credentials in URLs and redaction in
test_storage.py and test_secrets.py, reserved document ids in test_layout.py, the keyring's
messages in test_keyring.py. docs/security.md lists each threat with its test.
"""

from __future__ import annotations

import json

import pytest

from rythmiq import PayloadError
from rythmiq.payload import parse_payload

PAYLOAD = {
    "version": 1,
    "job_id": "j1",
    "user_id": "u1",
    "output": "/tmp/store",
    "document_id": "d1",
    "input": "input/a.png",
}


# ------------------------------------------------ 12: repeated names; 14: a version of 1.0


@pytest.mark.parametrize(
    "text",
    [
        '{"version": 1, "version": 1, "job_id": "j1"}',
        json.dumps(PAYLOAD)[:-1] + ', "options": {"ocr": true, "ocr": false}}',
        json.dumps(PAYLOAD)[:-1] + ', "output": "s3://elsewhere/x"}',
    ],
)
def test_a_payload_that_repeats_a_name_is_refused(text):
    # Python keeps the last value; another reader of the same file may keep the first.
    with pytest.raises(PayloadError) as exc:
        parse_payload(text)
    assert exc.value.code == "payload.malformed" and "repeated" in str(exc.value)


@pytest.mark.parametrize("version", [1.0, "1", True, 1.5])
def test_the_version_must_be_the_integer_1(version):
    with pytest.raises(PayloadError) as exc:
        parse_payload(json.dumps({**PAYLOAD, "version": version}))
    assert exc.value.code == "payload.version"
    assert parse_payload(json.dumps(PAYLOAD)).job_id == "j1"
