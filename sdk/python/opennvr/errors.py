"""Typed errors of the OpenNVR API.

The clients (:class:`opennvr.OpenNvrClient` and :class:`opennvr.aio.AsyncOpenNvrClient`) raise an
:class:`OpenNvrError` subclass for every failed call: one class per gRPC status code, and narrower
ones for some reasons (:class:`StepUpRequired`)::

    from opennvr import errors

    try:
        nvr.cameras.DeleteCamera(req)
    except errors.StepUpRequired:
        nvr.step_up_totp(input("TOTP code: "))
        nvr.cameras.DeleteCamera(req)
    except errors.NotFound:
        pass

Besides the status code and message, an error carries what the server put in the
``grpc-status-details-bin`` trailer (a ``google.rpc.Status``): ``reason`` (the ``ErrorReason`` value
name from ``google.rpc.ErrorInfo`` of domain ``opennvr.dev``), ``field`` (the first
``google.rpc.BadRequest`` field violation) and ``retry_after`` (seconds, from ``google.rpc.RetryInfo``).

Every ``OpenNvrError`` is a ``grpc.RpcError``, so ``except grpc.RpcError`` and ``err.code()`` /
``err.details()`` keep working. It is precisely a ``grpc.aio.AioRpcError`` (gRPC's public, concrete
RpcError that holds the final status), which lets ``grpc.aio`` treat it as the call's outcome; the
synchronous client raises the same classes.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, NamedTuple, Optional, Tuple, Type

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
import grpc.aio
from google.protobuf.message import DecodeError

__all__ = [
    "ERROR_DOMAIN",
    "STATUS_DETAILS_KEY",
    "OpenNvrError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "StepUpRequired",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "StatusDetails",
    "decode_status_details",
    "from_rpc_error",
]

#: Domain of the ``google.rpc.ErrorInfo`` the server sends (server/src/api/status.rs).
ERROR_DOMAIN = "opennvr.dev"
#: Trailer holding the serialized ``google.rpc.Status`` with the details.
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class StatusDetails(NamedTuple):
    """What the status-details trailer says beyond code and message."""

    reason: Optional[str] = None
    field: Optional[str] = None
    field_violations: Tuple[Tuple[str, str], ...] = ()
    retry_after: Optional[float] = None


def decode_status_details(trailing_metadata: Optional[Iterable[Tuple[str, Any]]]) -> StatusDetails:
    """Reads ``grpc-status-details-bin`` from a call's trailing metadata.

    Returns empty details when the trailer is missing or unreadable (an error from a proxy, say).
    """
    raw = None
    for key, value in trailing_metadata or ():
        if key.lower() == STATUS_DETAILS_KEY:
            raw = value
            break
    if not isinstance(raw, (bytes, bytearray)):
        return StatusDetails()
    status = status_pb2.Status()
    try:
        status.ParseFromString(bytes(raw))
    except DecodeError:
        return StatusDetails()
    reason: Optional[str] = None
    violations: Tuple[Tuple[str, str], ...] = ()
    retry_after: Optional[float] = None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            if info.domain == ERROR_DOMAIN and info.reason:
                reason = info.reason
        elif detail.Unpack(bad):
            violations += tuple((v.field, v.description) for v in bad.field_violations)
        elif detail.Unpack(retry):
            retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return StatusDetails(
        reason=reason,
        field=violations[0][0] if violations else None,
        field_violations=violations,
        retry_after=retry_after,
    )


class OpenNvrError(grpc.aio.AioRpcError):
    """A failed OpenNVR call: ``code()``, ``details()`` (also as ``message``), ``reason``,
    ``field``, ``field_violations`` and ``retry_after``.

    Built from a call's final status; the constructor is ``grpc.aio.AioRpcError``'s, so the
    details are decoded from ``trailing_metadata``. Use :func:`from_rpc_error` to get the most
    specific class for a ``grpc.RpcError``.
    """

    #: The status code this class stands for (``None`` on the base class).
    grpc_code: Optional[grpc.StatusCode] = None

    reason: Optional[str]
    """The ``ErrorReason`` value name, e.g. ``"ERROR_REASON_STEP_UP_REQUIRED"``, or ``None``."""
    field: Optional[str]
    """The request field at fault (first ``BadRequest`` field violation), e.g. ``"camera.name"``."""
    field_violations: Tuple[Tuple[str, str], ...]
    """Every ``(field, description)`` the server listed."""
    retry_after: Optional[float]
    """Seconds to wait before retrying (``RetryInfo``), or ``None``."""

    def __init__(
        self,
        code: grpc.StatusCode,
        initial_metadata: Optional[grpc.aio.Metadata] = None,
        trailing_metadata: Optional[grpc.aio.Metadata] = None,
        details: Optional[str] = None,
        debug_error_string: Optional[str] = None,
    ) -> None:
        super().__init__(code, initial_metadata, trailing_metadata, details, debug_error_string)
        decoded = decode_status_details(trailing_metadata)
        self.reason = decoded.reason
        self.field = decoded.field
        self.field_violations = decoded.field_violations
        self.retry_after = decoded.retry_after

    @property
    def message(self) -> str:
        """The server's message (the same as ``details()``)."""
        return self.details() or ""

    def __str__(self) -> str:
        text = f"{self.code().name}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        return text


class Cancelled(OpenNvrError):
    grpc_code = grpc.StatusCode.CANCELLED


class Unknown(OpenNvrError):
    grpc_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(OpenNvrError):
    """Bad input; ``field`` names the request field at fault."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(OpenNvrError):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(OpenNvrError):
    grpc_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(OpenNvrError):
    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(OpenNvrError):
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class StepUpRequired(PermissionDenied):
    """The RPC needs a recent second factor on this session (reason
    ``ERROR_REASON_STEP_UP_REQUIRED``): step up (``step_up_totp``), then call again."""


class ResourceExhausted(OpenNvrError):
    """Throttled or overloaded; ``retry_after`` says how long to wait when the server knows."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(OpenNvrError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(OpenNvrError):
    grpc_code = grpc.StatusCode.ABORTED


class OutOfRange(OpenNvrError):
    grpc_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(OpenNvrError):
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(OpenNvrError):
    grpc_code = grpc.StatusCode.INTERNAL


class Unavailable(OpenNvrError):
    grpc_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(OpenNvrError):
    grpc_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(OpenNvrError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: Dict[grpc.StatusCode, Type[OpenNvrError]] = {
    cls.grpc_code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
    if cls.grpc_code is not None
}

#: Reasons with a class of their own; used only when the class fits the status code.
_BY_REASON: Dict[str, Type[OpenNvrError]] = {
    "ERROR_REASON_STEP_UP_REQUIRED": StepUpRequired,
}


def _metadata(value: Any) -> Optional[grpc.aio.Metadata]:
    if value is None or isinstance(value, grpc.aio.Metadata):
        return value
    return grpc.aio.Metadata(*((key, val) for key, val in value))


def from_rpc_error(error: grpc.RpcError) -> OpenNvrError:
    """The most specific :class:`OpenNvrError` for a failed call (``error`` itself if it is one)."""
    if isinstance(error, OpenNvrError):
        return error
    code_of = getattr(error, "code", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details = getattr(error, "details", None)
    message = details() if callable(details) else str(error)
    trailing = _metadata(_call_or_none(error, "trailing_metadata"))
    cls = _BY_CODE.get(code, OpenNvrError)
    reason = decode_status_details(trailing).reason
    special = _BY_REASON.get(reason or "")
    if special is not None and issubclass(special, cls):
        cls = special
    return cls(
        code,
        _metadata(_call_or_none(error, "initial_metadata")),
        trailing,
        message,
        _call_or_none(error, "debug_error_string"),
    )


def _call_or_none(error: grpc.RpcError, name: str) -> Any:
    method = getattr(error, name, None)
    return method() if callable(method) else None
