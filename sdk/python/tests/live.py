"""What the smoke tests share: the live server's environment and the second factors it handed out.

Environment (all required; the tests fail, never skip, without them):
  OPENNVR_SMOKE_GRPC_TARGET  host:port of the server, e.g. 127.0.0.1:7450
  OPENNVR_SMOKE_USER         an existing user (scripts/sdk-smoke bootstraps it in the TypeScript smoke)
  OPENNVR_SMOKE_PASSWORD     its password
  OPENNVR_SMOKE_MFA_FILE     JSON with recovery codes of that user's second factor (written by the TypeScript
                             smoke test when it enrols TOTP): each login here spends one
  OPENNVR_SMOKE_FACES_URL    the example adapter (examples/adapters/faces), started by scripts/sdk-smoke
  OPENNVR_SMOKE_FACES_TOKEN  its bearer token
  OPENNVR_SMOKE_FACES_IMAGE  a JPEG of scikit-image's astronaut portrait (one face)
"""

from __future__ import annotations

import json
import os

import pytest

from opennvr.v1 import auth_service_pb2

ENV = (
    "OPENNVR_SMOKE_GRPC_TARGET",
    "OPENNVR_SMOKE_USER",
    "OPENNVR_SMOKE_PASSWORD",
    "OPENNVR_SMOKE_MFA_FILE",
    "OPENNVR_SMOKE_FACES_URL",
    "OPENNVR_SMOKE_FACES_TOKEN",
    "OPENNVR_SMOKE_FACES_IMAGE",
)


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set: the smoke test needs a live server (run scripts/sdk-smoke)", pytrace=False)
    return value


def target() -> str:
    return env("OPENNVR_SMOKE_GRPC_TARGET")


def user() -> str:
    return env("OPENNVR_SMOKE_USER")


def password() -> str:
    return env("OPENNVR_SMOKE_PASSWORD")


_spent = 0


def second_factor() -> auth_service_pb2.SecondFactor:
    """A recovery code no test of this run has spent yet (a login spends one; a TOTP code would work
    only once per 30 s)."""
    global _spent
    with open(env("OPENNVR_SMOKE_MFA_FILE"), encoding="utf-8") as f:
        codes = json.load(f)["recoveryCodes"]
    if _spent >= len(codes):
        pytest.fail(f"the smoke run has only {len(codes)} recovery codes for Python and all are spent", pytrace=False)
    _spent += 1
    return auth_service_pb2.SecondFactor(recovery_code=str(codes[_spent - 1]))
