"""What the synchronous and the asyncio clients share: which RPCs are public (read from the policy
option of every RPC), where the bearer credential goes, and the bookkeeping of a signed-in
session's tokens. No I/O and no locking here; each client brings its own lock (``threading.Lock``
or ``asyncio.Lock``) and its own calls.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from typing import Any, FrozenSet, Iterable, Iterator, List, Optional, Tuple, Union

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor

import opennvr.v1
from opennvr.v1 import (
    api_key_service_pb2_grpc,
    audit_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
    camera_service_pb2_grpc,
    event_service_pb2_grpc,
    ids_service_pb2_grpc,
    inference_service_pb2_grpc,
    master_key_service_pb2_grpc,
    options_pb2,
    recording_service_pb2_grpc,
    user_service_pb2_grpc,
)


def api_files() -> Iterator[FileDescriptor]:
    """The files of every generated module of the OpenNVR API (``opennvr.v1.*_pb2``)."""
    for module in pkgutil.iter_modules(opennvr.v1.__path__):
        if module.name.endswith("_pb2"):
            file: FileDescriptor = importlib.import_module(f"opennvr.v1.{module.name}").DESCRIPTOR
            yield file


def is_public(method: MethodDescriptor) -> bool:
    """Whether an RPC takes no credential: its ``(opennvr.v1.policy)`` option says ``public: true``."""
    rule = method.GetOptions().Extensions[options_pb2.policy]
    return rule.WhichOneof("access") == "public" and rule.public


def public_methods(files: Iterable[FileDescriptor]) -> FrozenSet[str]:
    """The public RPCs of the services in ``files``, as ``/opennvr.v1.AuthService/Login``."""
    return frozenset(
        f"/{service.full_name}/{method.name}"
        for file in files
        for service in file.services_by_name.values()
        for method in service.methods
        if is_public(method)
    )


#: RPCs that take no credential, read from the policy option of every RPC. The one list of them:
#: both clients' interceptors read it.
PUBLIC_METHODS = public_methods(api_files())

AUTHORIZATION = "authorization"


def wants_credential(method: Union[str, bytes], metadata: Optional[Iterable[Tuple[str, Any]]]) -> bool:
    """Whether a call to ``method`` should get the bearer credential: not a public RPC, and the
    caller did not send an ``authorization`` header of their own."""
    name = method.decode() if isinstance(method, bytes) else method
    if name in PUBLIC_METHODS:
        return False
    return not any(key.lower() == AUTHORIZATION for key, _ in metadata or ())


def bearer(credential: str) -> Tuple[str, str]:
    """The metadata entry carrying ``credential``."""
    return (AUTHORIZATION, f"Bearer {credential}")


class Stubs:
    """One stub per OpenNVR service over one channel; the sync and asyncio clients both are these."""

    def _attach(self, channel: Any) -> None:
        self.auth = auth_service_pb2_grpc.AuthServiceStub(channel)
        self.cameras = camera_service_pb2_grpc.CameraServiceStub(channel)
        self.recordings = recording_service_pb2_grpc.RecordingServiceStub(channel)
        self.audit = audit_service_pb2_grpc.AuditServiceStub(channel)
        self.events = event_service_pb2_grpc.EventServiceStub(channel)
        self.inference = inference_service_pb2_grpc.InferenceServiceStub(channel)
        self.users = user_service_pb2_grpc.UserServiceStub(channel)
        self.api_keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        self.master_key = master_key_service_pb2_grpc.MasterKeyServiceStub(channel)
        self.ids = ids_service_pb2_grpc.IdsServiceStub(channel)


class Session:
    """The credential sent with each call and, after a password sign-in, the session's tokens.

    ``refresh_margin`` (seconds): an access token that expires within it is refreshed before the
    next call, if a refresh token is held (``0`` turns that off).
    """

    def __init__(self, credential: Optional[str], refresh_margin: float) -> None:
        self.credential = credential
        self.tokens: Optional[auth_service_pb2.Tokens] = None
        self.refresh_margin = refresh_margin

    def use(self, credential: Optional[str]) -> None:
        """Sends ``credential`` (an API key secret or an access token) and forgets held tokens."""
        self.tokens = None
        self.credential = credential

    def keep(self, tokens: auth_service_pb2.Tokens) -> auth_service_pb2.Tokens:
        """Holds the tokens of a sign-in or refresh; their access token becomes the credential."""
        if not tokens.access_token:
            raise RuntimeError("OpenNVR answered without tokens")
        self.tokens = tokens
        self.credential = tokens.access_token
        return tokens

    def keep_login(self, res: auth_service_pb2.LoginResponse) -> auth_service_pb2.LoginResponse:
        """Keeps the tokens of a login that needed no second factor."""
        if res.WhichOneof("result") == "tokens":
            self.keep(res.tokens)
        return res

    def forget(self) -> None:
        self.tokens = None
        self.credential = None

    def refresh_request(self) -> auth_service_pb2.RefreshRequest:
        if self.tokens is None or not self.tokens.refresh_token:
            raise RuntimeError("no refresh token held; log in first")
        return auth_service_pb2.RefreshRequest(refresh_token=self.tokens.refresh_token)

    def needs_refresh(self, now: Optional[float] = None) -> bool:
        """Whether the access token expires within the margin (and can be refreshed)."""
        tokens = self.tokens
        if self.refresh_margin <= 0 or tokens is None or not tokens.refresh_token:
            return False
        if not tokens.HasField("access_token_expire_time"):
            return False
        now = time.time() if now is None else now
        return tokens.access_token_expire_time.ToSeconds() - now < self.refresh_margin


def with_bearer(metadata: Optional[Iterable[Tuple[str, Any]]], credential: str) -> List[Tuple[str, Any]]:
    """A copy of ``metadata`` with the bearer credential added."""
    return [*(metadata or ()), bearer(credential)]
