#!/usr/bin/env python3
"""Sign a payload as a Ferrosphere COSE_Sign1 with pycose (an independent COSE implementation).

Usage: pycose_sign.py PRIVATE_KEY_PEM_FILE PAYLOAD_FILE EXTERNAL_AAD_HEX CONTENT_TYPE OUT_FILE

Protected header {1: -7 (ES256), 3: CONTENT_TYPE, 4: SHA-256(SPKI DER)}, empty unprotected
header, embedded payload, tag 18. Requires: pip install -r tests/interop/requirements.txt (pycose==1.1.0, cbor2<6)
"""
import hashlib
import sys

from cryptography.hazmat.primitives import serialization
from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm, ContentType
from pycose.keys import CoseKey
from pycose.messages import Sign1Message


def main() -> int:
    key_path, payload_path, aad_hex, content_type, out_path = sys.argv[1:6]
    pem = open(key_path, "rb").read()
    private = serialization.load_pem_private_key(pem, password=None)
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    msg = Sign1Message(
        phdr={Algorithm: Es256, ContentType: content_type, KID: hashlib.sha256(spki).digest()},
        uhdr={},
        payload=open(payload_path, "rb").read(),
        external_aad=bytes.fromhex(aad_hex),
    )
    msg.key = CoseKey.from_pem_private_key(pem.decode())
    open(out_path, "wb").write(msg.encode(tag=True))
    print("pycose: signed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
