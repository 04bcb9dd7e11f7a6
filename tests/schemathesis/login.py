"""Prepares a fresh service for scripts/schemathesis.sh: the first administrator (a platform
operator) replaces its one-time password, logs in, makes a tenant and an API token, and a spare
user and a spare API token for the routes that delete or reset them to act on (the run's own
token and user must survive it). Prints shell
assignments of FERRO_FUZZ_TOKEN, FERRO_FUZZ_TENANT, FERRO_FUZZ_USER and FERRO_FUZZ_TOKEN_ID;
exits non-zero on any unexpected answer.

Reads FERRO_FUZZ_BASE (http://127.0.0.1:PORT) and FERRO_FUZZ_OTP (the one-time password)."""

import os
import secrets
import sys

import requests

BASE = os.environ["FERRO_FUZZ_BASE"]
LOGIN = "admin@localhost"


def call(method, path, expect, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.request(method, BASE + path, headers=headers, timeout=60, **kwargs)
    if r.status_code != expect:
        sys.exit(f"{method} {path}: expected {expect}, got {r.status_code}: {r.text}")
    return r.json() if r.content else None


password = "fuzz-" + secrets.token_urlsafe(24)
call(
    "POST",
    "/v1/auth/change-password",
    204,
    json={"login": LOGIN, "currentPassword": os.environ["FERRO_FUZZ_OTP"], "newPassword": password},
)
session = call("POST", "/v1/auth/login", 200, json={"login": LOGIN, "password": password})["token"]
tenant = call("POST", "/v1/tenants", 201, session, json={"name": "Fuzz"})["id"]
token = call("POST", "/v1/me/tokens", 201, session, json={"name": "schemathesis"})["secret"]
spare_token = call("POST", "/v1/me/tokens", 201, session, json={"name": "spare"})["token"]["id"]
spare_user = call(
    "POST",
    "/v1/users",
    201,
    session,
    json={"login": "spare@localhost", "displayName": "Spare", "platformOperator": False},
)["user"]["id"]
call("GET", f"/v1/tenants/{tenant}", 200, token)
print(f"FERRO_FUZZ_TOKEN={token}")
print(f"FERRO_FUZZ_TENANT={tenant}")
print(f"FERRO_FUZZ_USER={spare_user}")
print(f"FERRO_FUZZ_TOKEN_ID={spare_token}")
