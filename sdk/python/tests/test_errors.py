"""opennvr.errors without a server: the status details are decoded as server/src/api/status.rs
encodes them (a google.rpc.Status in grpc-status-details-bin; ErrorInfo of domain opennvr.dev,
BadRequest field violations, RetryInfo)."""

from __future__ import annotations

import grpc
import grpc.aio
from google.protobuf import message
from google.rpc import error_details_pb2, status_pb2

from opennvr import errors


def failed_call(code: grpc.StatusCode, text: str, *details: message.Message) -> grpc.aio.AioRpcError:
    status = status_pb2.Status(code=code.value[0], message=text)
    for detail in details:
        status.details.add().Pack(detail)
    trailer = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailer, text)


def test_step_up_reason_raises_step_up_required() -> None:
    err = errors.from_rpc_error(
        failed_call(
            grpc.StatusCode.PERMISSION_DENIED,
            "this call needs a recent second factor",
            error_details_pb2.ErrorInfo(reason="ERROR_REASON_STEP_UP_REQUIRED", domain="opennvr.dev"),
        )
    )
    assert type(err) is errors.StepUpRequired
    assert isinstance(err, errors.PermissionDenied) and isinstance(err, grpc.RpcError)
    assert err.reason == "ERROR_REASON_STEP_UP_REQUIRED"


def test_retry_info_gives_retry_after_in_seconds() -> None:
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromMilliseconds(2500)
    err = errors.from_rpc_error(failed_call(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many attempts", retry))
    assert type(err) is errors.ResourceExhausted
    assert err.retry_after == 2.5


def test_error_info_of_another_domain_gives_no_reason() -> None:
    err = errors.from_rpc_error(
        failed_call(
            grpc.StatusCode.PERMISSION_DENIED,
            "denied by a proxy",
            error_details_pb2.ErrorInfo(reason="ERROR_REASON_STEP_UP_REQUIRED", domain="proxy.example"),
        )
    )
    assert type(err) is errors.PermissionDenied
    assert err.reason is None
