"""Smoke test of the Python SDK's synchronous client against a LIVE OpenNVR server over gRPC (plain h2c).

The environment it needs is described in live.py (scripts/sdk-smoke sets it).
"""

from __future__ import annotations

import pathlib
import time

import grpc
import pytest
from google.protobuf import descriptor_pool

from live import ENV, env, password, second_factor, target, user
from opennvr import OpenNvrClient, errors
from opennvr.client import PUBLIC_METHODS
from opennvr.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    common_pb2,
    event_service_pb2,
    inference_service_pb2,
    options_pb2,
)


def test_environment() -> None:
    for name in ENV:
        env(name)


def test_public_methods_are_those_whose_policy_says_public() -> None:
    # Every proto file of the repository, looked up in the descriptor pool the generated modules filled.
    proto = pathlib.Path(__file__).resolve().parents[3] / "proto"
    scanned = set()
    services = 0
    for path in sorted(proto.glob("opennvr/v1/*.proto")):
        file = descriptor_pool.Default().FindFileByName(path.relative_to(proto).as_posix())
        for service in file.services_by_name.values():
            services += 1
            for method in service.methods:
                rule = method.GetOptions().Extensions[options_pb2.policy]
                assert rule.step_up != options_pb2.Policy.STEP_UP_UNSPECIFIED, f"{service.name}.{method.name}"
                if rule.WhichOneof("access") == "public":
                    scanned.add(f"/{service.full_name}/{method.name}")
    assert services == 10
    assert PUBLIC_METHODS == scanned
    assert "/opennvr.v1.AuthService/Login" in PUBLIC_METHODS
    assert "/opennvr.v1.AuthService/WhoAmI" not in PUBLIC_METHODS


def test_login_and_whoami() -> None:
    with OpenNvrClient(target()) as nvr:
        res = nvr.login(user(), password(), timeout=30)
        assert res.WhichOneof("result") == "mfa_required"
        assert nvr.credential is None
        tokens = nvr.finish_mfa(res.mfa_required.ticket, second_factor(), timeout=30)
        assert tokens.access_token
        assert nvr.credential == tokens.access_token

        me = nvr.auth.WhoAmI(auth_service_pb2.WhoAmIRequest(), timeout=30)
        assert me.user.username == user().lower()
        assert me.session_id == tokens.session_id


def test_plain_stub_with_bearer_metadata() -> None:
    with grpc.insecure_channel(target()) as channel:
        auth = auth_service_pb2_grpc.AuthServiceStub(channel)
        res = auth.Login(
            auth_service_pb2.LoginRequest(username=user(), password=password()),
            timeout=30,
        )
        done = auth.FinishMfa(
            auth_service_pb2.FinishMfaRequest(ticket=res.mfa_required.ticket, factor=second_factor()), timeout=30
        )
        me = auth.WhoAmI(
            auth_service_pb2.WhoAmIRequest(),
            metadata=[("authorization", f"Bearer {done.tokens.access_token}")],
            timeout=30,
        )
        assert me.user.username == user().lower()


def test_refreshes_expiring_access_token() -> None:
    # A margin longer than any token lifetime makes every authenticated call refresh first.
    with OpenNvrClient(target(), refresh_margin=10**9) as nvr:
        challenge = nvr.login(user(), password(), timeout=30).mfa_required
        first = nvr.finish_mfa(challenge.ticket, second_factor(), timeout=30)
        me = nvr.whoami(timeout=30)
        assert nvr.tokens is not None
        assert nvr.tokens.refresh_token != first.refresh_token, "the refresh token did not rotate"
        assert me.session_id == first.session_id


def test_whoami_without_credential_is_unauthenticated() -> None:
    with OpenNvrClient(target()) as nvr:
        with pytest.raises(errors.Unauthenticated) as err:
            nvr.whoami(timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()


def test_typed_errors_are_still_grpc_rpc_errors() -> None:
    with OpenNvrClient(target()) as nvr:
        with pytest.raises(grpc.RpcError) as err:
            nvr.whoami(timeout=30)
        assert isinstance(err.value, errors.OpenNvrError), type(err.value)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()


def test_wrong_password_raises_unauthenticated_with_invalid_credentials() -> None:
    with OpenNvrClient(target()) as nvr:
        with pytest.raises(errors.Unauthenticated) as err:
            nvr.login(user(), password() + "-wrong", timeout=30)
        assert err.value.reason == "ERROR_REASON_INVALID_CREDENTIALS", err.value
        assert nvr.credential is None


def test_malformed_recovery_code_raises_invalid_argument_naming_the_field() -> None:
    with OpenNvrClient(target()) as nvr:
        ticket = nvr.login(user(), password(), timeout=30).mfa_required.ticket
        with pytest.raises(errors.InvalidArgument) as err:
            nvr.finish_mfa(ticket, auth_service_pb2.SecondFactor(recovery_code="not-a-code"), timeout=30)
        assert err.value.field == "factor.recovery_code", err.value


def test_watch_without_credential_raises_unauthenticated_from_the_stream() -> None:
    with OpenNvrClient(target()) as nvr:
        watch = nvr.events.WatchEvents(event_service_pb2.WatchEventsRequest(), timeout=30)
        with pytest.raises(errors.Unauthenticated):
            next(iter(watch))


def test_the_example_adapter_finds_a_face_through_the_server() -> None:
    # The Python SDK registers the real example adapter, the server probes it (the adapter's
    # health change reaches a WatchEvents stream), and an uploaded portrait goes through the
    # adapter's bulkhead: one face comes back where the face is.
    inf = inference_service_pb2
    with OpenNvrClient(target()) as nvr:
        challenge = nvr.login(user(), password(), timeout=30).mfa_required
        nvr.finish_mfa(challenge.ticket, second_factor(), timeout=30)
        watch = nvr.events.WatchEvents(
            event_service_pb2.WatchEventsRequest(types=[common_pb2.EVENT_TYPE_ADAPTER_HEALTHY]), timeout=60
        )
        watch.initial_metadata()  # the server has subscribed: nothing from now on is missed
        adapter = nvr.inference.CreateAdapter(
            inf.CreateAdapterRequest(
                adapter=inf.Adapter(name="smoke faces", endpoint_url=env("OPENNVR_SMOKE_FACES_URL"), enabled=True),
                token=env("OPENNVR_SMOKE_FACES_TOKEN"),
            ),
            timeout=30,
        ).adapter
        try:
            assert adapter.has_token
            deadline = time.monotonic() + 30
            while True:
                got = nvr.inference.GetAdapter(inf.GetAdapterRequest(adapter_id=adapter.id), timeout=30).adapter
                if got.health == inf.ADAPTER_HEALTH_HEALTHY:
                    break
                assert time.monotonic() < deadline, f"the adapter never became healthy: {got}"
                time.sleep(0.2)
            assert list(got.capabilities) == ["face_detection"]
            for message in watch:
                if message.WhichOneof("kind") == "event" and message.event.adapter_health.adapter_id == adapter.id:
                    assert message.event.adapter_health.health == inf.ADAPTER_HEALTH_HEALTHY
                    break
            watch.cancel()
            with open(env("OPENNVR_SMOKE_FACES_IMAGE"), "rb") as f:
                jpeg = f.read()
            res = nvr.inference.RunInference(
                inf.RunInferenceRequest(adapter_id=adapter.id, image_jpeg=jpeg), timeout=60
            )
            assert len(res.runs) == 1 and res.runs[0].error == "", res
            faces = res.runs[0].detections
            assert [d.label for d in faces] == ["face"], res
            box = faces[0].bounding_box
            cx, cy = box.x + box.width / 2, box.y + box.height / 2
            assert 0.35 < cx < 0.53 and 0.13 < cy < 0.31, box
        finally:
            nvr.inference.DeleteAdapter(inf.DeleteAdapterRequest(adapter_id=adapter.id, force=True), timeout=30)
