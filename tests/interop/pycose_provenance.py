#!/usr/bin/env python3
"""Signed telemetry batches (docs/provenance.md) with pycose, an independent COSE implementation.

Usage:
  pycose_provenance.py verify BATCH_FILE TENANT_CA_PEM_FILE
      Decode the batch with pycose; check the tenant CA signed the x5chain leaf (cryptography),
      kid = SHA-256(leaf SPKI DER), device ID = SHA-512(leaf SPKI DER), alg ES256, the
      content type, an empty unprotected header, and the signature with the leaf's key.
      Exit 0 and print the headers as JSON (byte strings in hex), exit 1 otherwise.
  pycose_provenance.py sign DEVICE_KEY_PEM PAYLOAD_FILE OUT_FILE CLAIMS_JSON CERT_DER_FILE...
      Sign PAYLOAD_FILE as a batch of the device whose key and certificate chain (leaf first)
      are given; CLAIMS_JSON holds componentId, imageId, bootId (UUIDs), development, sequence
      and signedAt (Unix seconds). The protected header is written in the format's order.
Requires: pip install -r tests/interop/requirements.txt (pycose==1.1.0, cbor2<6)
"""
import hashlib
import json
import sys
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm, ContentType
from pycose.keys import CoseKey
from pycose.messages import CoseMessage, Sign1Message

CONTENT_TYPE = "application/vnd.ferrosphere.telemetry-batch"
X5CHAIN = 33
DEVICE_ID, COMPONENT_ID, IMAGE_ID, DEVELOPMENT = -70101, -70102, -70103, -70104
BOOT_ID, SEQUENCE, SIGNED_AT = -70105, -70106, -70107


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def header(msg, label):
    # pycose maps the labels it knows (33 is x5chain) to its own classes: look up by identifier.
    for key, value in msg.phdr.items():
        if key == label or getattr(key, "identifier", None) == label:
            return value
    return None


def verify(batch_path: str, ca_path: str) -> int:
    msg = CoseMessage.decode(open(batch_path, "rb").read())
    if not isinstance(msg, Sign1Message):
        print("not a COSE_Sign1", file=sys.stderr)
        return 1
    chain = header(msg, X5CHAIN)
    chain = [chain] if isinstance(chain, bytes) else list(chain or [])
    if not chain:
        print("no x5chain", file=sys.stderr)
        return 1
    leaf = x509.load_der_x509_certificate(chain[0])
    ca = x509.load_pem_x509_certificate(open(ca_path, "rb").read())
    try:
        ca.public_key().verify(
            leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm)
        )
        chained = leaf.issuer == ca.subject
    except Exception:  # noqa: BLE001 - any failure is a refusal
        chained = False
    msg.key = CoseKey.from_pem_public_key(
        leaf.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    )
    checks = {
        "alg": header(msg, 1) in (Es256, Es256.identifier),
        "content_type": header(msg, 3) == CONTENT_TYPE,
        "kid": header(msg, 4) == hashlib.sha256(spki(leaf)).digest(),
        "device_id": header(msg, DEVICE_ID) == hashlib.sha512(spki(leaf)).digest(),
        "chain": chained,
        "unprotected_empty": len(msg.uhdr) == 0,
        "signature": msg.verify_signature(),
    }
    if not all(checks.values()):
        print(f"pycose refused: {checks}", file=sys.stderr)
        return 1
    print("pycose: batch verified")
    print(
        json.dumps(
            {
                "deviceId": header(msg, DEVICE_ID).hex(),
                "componentId": str(uuid.UUID(bytes=header(msg, COMPONENT_ID))),
                "imageId": str(uuid.UUID(bytes=header(msg, IMAGE_ID))),
                "development": header(msg, DEVELOPMENT),
                "bootId": str(uuid.UUID(bytes=header(msg, BOOT_ID))),
                "sequence": header(msg, SEQUENCE),
                "signedAt": header(msg, SIGNED_AT),
                "payload": msg.payload.decode("utf-8", "replace"),
            },
            sort_keys=True,
        )
    )
    return 0


def sign(key_path, payload_path, out_path, claims_json, cert_paths) -> int:
    pem = open(key_path, "rb").read()
    private = serialization.load_pem_private_key(pem, password=None)
    public_spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = json.loads(claims_json)
    chain = [open(p, "rb").read() for p in cert_paths]
    msg = Sign1Message(
        # The format's one order: 1, 3, 4, 33, then the private labels by magnitude.
        phdr={
            Algorithm: Es256,
            ContentType: CONTENT_TYPE,
            KID: hashlib.sha256(public_spki).digest(),
            X5CHAIN: chain[0] if len(chain) == 1 else chain,
            DEVICE_ID: hashlib.sha512(public_spki).digest(),
            COMPONENT_ID: uuid.UUID(claims["componentId"]).bytes,
            IMAGE_ID: uuid.UUID(claims["imageId"]).bytes,
            DEVELOPMENT: bool(claims["development"]),
            BOOT_ID: uuid.UUID(claims["bootId"]).bytes,
            SEQUENCE: int(claims["sequence"]),
            SIGNED_AT: int(claims["signedAt"]),
        },
        uhdr={},
        payload=open(payload_path, "rb").read(),
    )
    msg.key = CoseKey.from_pem_private_key(pem.decode())
    open(out_path, "wb").write(msg.encode(tag=True))
    print("pycose: signed")
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "verify":
        return verify(sys.argv[2], sys.argv[3])
    if len(sys.argv) >= 7 and sys.argv[1] == "sign":
        return sign(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
