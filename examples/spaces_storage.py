"""Store a document's artifacts in DigitalOcean Spaces (or any S3), then read them back.

Everything secret comes from the environment, never from arguments:

    export RYTHMIQ_S3_ENDPOINT=https://nyc3.digitaloceanspaces.com RYTHMIQ_S3_REGION=nyc3
    export SPACES_KEY=... SPACES_SECRET=...
    export RYTHMIQ_KEYRING_FILE=/run/secrets/keyring.json    # made by `rythmiq keygen`
    python examples/spaces_storage.py scan.jpg s3://my-space/rythmiq --user-id u-42

It writes the encrypted master, the normalized image, the preview, the OCR text and
result.json (last), lists them, reads result.json back, and decrypts the master to check it
is byte-identical to the input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import uuid
from pathlib import Path

import rythmiq
from rythmiq.crypto import EncryptionContext, decrypt
from rythmiq.layout import artifact_key


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("store", help="store URL, e.g. s3://my-space/rythmiq")
    ap.add_argument("--user-id", default="example-user")
    ap.add_argument("--job-id", default=None, help="default: a new job id")
    ap.add_argument("--document-id", default=None, help="default: the file name")
    args = ap.parse_args()

    store = rythmiq.Store.open(args.store)  # endpoint and credentials from the environment
    keyring = rythmiq.load_keyring().keyring  # RYTHMIQ_KEYRING / RYTHMIQ_KEYRING_FILE
    ids = rythmiq.Ids(
        args.user_id,
        args.job_id or f"job-{uuid.uuid4().hex[:8]}",
        args.document_id or args.image.stem,
    )
    try:
        result = rythmiq.process(args.image, store=store, ids=ids, keyring=keyring)
    except rythmiq.RythmiqError as exc:  # nothing of this document is left half-written
        print(f"failed: {exc.code}: {exc.message}")
        return int(exc.exit_code)

    for artifact in result.artifacts:
        print(f"{artifact.kind:<10} {artifact.size:>9} B  {artifact.url}")

    stored = json.loads(store.read(artifact_key("result", ids)))
    lines = sum(len(page["ocr"]["lines"]) for page in stored["pages"] if page["ocr"])
    print(
        f"result.json: {stored['page_count']} page(s), "
        f"quality {stored['min_quality']:.2f} (lowest page), {lines} OCR lines"
    )

    master_key = next(a.key for a in result.artifacts if a.kind == "master")
    plain = decrypt(
        store.read(master_key), keyring, EncryptionContext(ids.user_id, ids.document_id, master_key)
    )
    same = hashlib.sha256(plain).hexdigest() == hashlib.sha256(args.image.read_bytes()).hexdigest()
    print(f"master decrypts to the original: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
