#!/usr/bin/env python3
"""Verify a Ferrosphere COSE_Sign1 with pycose (an independent COSE implementation).

Usage: pycose_verify.py ENVELOPE_FILE EXTERNAL_AAD_HEX PUBLIC_KEY_PEM_FILE EXPECTED_CONTENT_TYPE

Exit 0 and print the decoded metadata map as JSON if the signature verifies, the algorithm is
ES256, the content type is the expected purpose and the kid is SHA-256(SPKI DER). Exit 1 otherwise.
Requires: pip install -r tests/interop/requirements.txt (pycose==1.1.0, cbor2<6)
"""
import hashlib
import json
import sys

import cbor2
from cryptography.hazmat.primitives import serialization
from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm, ContentType
from pycose.keys import CoseKey
from pycose.messages import CoseMessage, Sign1Message


def jsonable(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    return v


def main() -> int:
    envelope_path, aad_hex, pem_path, expected_ct = sys.argv[1:5]
    envelope = open(envelope_path, "rb").read()
    pem = open(pem_path, "rb").read()
    msg = CoseMessage.decode(envelope)
    if not isinstance(msg, Sign1Message):
        print("not a COSE_Sign1", file=sys.stderr)
        return 1
    msg.external_aad = bytes.fromhex(aad_hex)
    msg.key = CoseKey.from_pem_public_key(pem.decode())
    spki = serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    checks = {
        "alg": msg.phdr.get(Algorithm) in (Es256, Es256.identifier),
        "content_type": msg.phdr.get(ContentType) == expected_ct,
        "kid": msg.phdr.get(KID) == hashlib.sha256(spki).digest(),
        "unprotected_empty": len(msg.uhdr) == 0,
        "signature": msg.verify_signature(),
    }
    if not all(checks.values()):
        print(f"pycose refused: {checks}", file=sys.stderr)
        return 1
    print("pycose: signature verified")
    print(json.dumps(jsonable(cbor2.loads(msg.payload)), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
