"""Verifies a brig envelope with code nobody on brig wrote.

securesystemslib's DSSE implementation checks the signature (it requires the
signature's keyid to equal the key's); the keyid is recomputed here from the
PEM with `cryptography` (hex SHA-256 of the SubjectPublicKeyInfo DER);
`jsonschema` checks the statement against the Statement v1 / SLSA Provenance
v1 schema; hashlib recomputes the output digests.

With --resign PRIVKEY OUT, it also signs the same payload with
securesystemslib's CryptoSigner into OUT, for brig's verifier to check.

usage: independent_verify.py ENVELOPE PUBKEY.pem SCHEMA.json
           [--artifacts DIR] [--resign PRIVKEY.pem OUT.json]
"""

import argparse
import base64
import copy
import hashlib
import json
import os
import sys

import jsonschema
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey


def fail(msg):
    print(f"independent verification FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("envelope")
    ap.add_argument("pubkey")
    ap.add_argument("schema")
    ap.add_argument("--artifacts")
    ap.add_argument("--resign", nargs=2, metavar=("PRIVKEY", "OUT"))
    args = ap.parse_args()
    env_path, key_path, schema_path, artifacts = args.envelope, args.pubkey, args.schema, args.artifacts
    with open(env_path, "rb") as f:
        data = json.load(f)
    with open(key_path, "rb") as f:
        pem = f.read()

    public_key = serialization.load_pem_public_key(pem)
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = hashlib.sha256(spki).hexdigest()
    sig_keyids = [s["keyid"] for s in data["signatures"]]
    if sig_keyids != [keyid]:
        fail(f"signature keyids {sig_keyids} != SHA-256 of the key's SPKI {keyid}")

    key = SSlibKey.from_crypto(public_key, keyid=keyid)
    envelope = Envelope.from_dict(copy.deepcopy(data))
    if envelope.payload_type != "application/vnd.in-toto+json":
        fail(f"payload type {envelope.payload_type}")
    try:
        accepted = envelope.verify([key], 1)
    except VerificationError as e:
        fail(f"securesystemslib rejected the signature: {e}")
    if list(accepted) != [keyid]:
        fail(f"accepted keys {list(accepted)}")

    # The verifier must really check: a changed payload and a key with another
    # keyid are both refused.
    tampered = copy.deepcopy(data)
    payload = bytearray(base64.b64decode(tampered["payload"]))
    payload[len(payload) // 2] ^= 1
    tampered["payload"] = base64.b64encode(bytes(payload)).decode()
    try:
        Envelope.from_dict(tampered).verify([key], 1)
        fail("a tampered payload verified")
    except VerificationError:
        pass
    other = SSlibKey.from_crypto(public_key, keyid="0" * 64)
    try:
        Envelope.from_dict(copy.deepcopy(data)).verify([other], 1)
        fail("a signature verified under a key with another keyid")
    except VerificationError:
        pass

    statement = json.loads(envelope.payload)
    with open(schema_path, "rb") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(statement), key=str)
    if errors:
        fail("schema: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors))
    # The schema must reject what the spec forbids.
    for broken in (
        {**statement, "_type": "https://in-toto.io/Statement/v0.1"},
        {**statement, "subject": []},
        {**statement, "subject": [{"name": "x", "digest": {"sha256": "XYZ"}}]},
    ):
        if jsonschema.Draft202012Validator(schema).is_valid(broken):
            fail("the schema accepts an invalid statement")

    checked = 0
    if artifacts:
        invocation = statement["predicate"]["runDetails"]["metadata"]["invocationId"]
        for subject in statement["subject"]:
            if subject["name"] == f"run:{invocation}":
                continue
            with open(os.path.join(artifacts, subject["name"]), "rb") as f:
                actual = hashlib.sha256(f.read()).hexdigest()
            if actual != subject["digest"]["sha256"]:
                fail(f"digest of {subject['name']}: {actual} != {subject['digest']['sha256']}")
            checked += 1

    if args.resign:
        with open(args.resign[0], "rb") as f:
            private = serialization.load_pem_private_key(f.read(), password=None)
        resigned = Envelope(envelope.payload, envelope.payload_type, {})
        resigned.sign(CryptoSigner(private, key))
        with open(args.resign[1], "w") as f:
            json.dump(resigned.to_dict(), f)

    print(f"independent verification OK: keyid {keyid}, {len(statement['subject'])} subject(s), {checked} file(s) rehashed")


if __name__ == "__main__":
    main()
