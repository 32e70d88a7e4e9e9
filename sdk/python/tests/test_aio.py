"""Smoke test of the Python SDK's asyncio client (opennvr.aio) against a LIVE OpenNVR server.

The environment it needs is described in live.py (scripts/sdk-smoke sets it). Each test drives its
coroutine with asyncio.run, so no pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Coroutine

import grpc
import pytest

from live import password, second_factor, target, user
from opennvr import errors
from opennvr.aio import AsyncOpenNvrClient
from opennvr.v1 import auth_service_pb2, camera_service_pb2, common_pb2, event_service_pb2


def run(scenario: Coroutine[Any, Any, None], timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout))


async def sign_in(nvr: AsyncOpenNvrClient) -> auth_service_pb2.Tokens:
    challenge = (await nvr.login(user(), password(), timeout=30)).mfa_required
    return await nvr.finish_mfa(challenge.ticket, second_factor(), timeout=30)


def test_aio_logs_in_with_a_second_factor() -> None:
    async def scenario() -> None:
        async with AsyncOpenNvrClient(target()) as nvr:
            res = await nvr.login(user(), password(), timeout=30)
            assert res.WhichOneof("result") == "mfa_required"
            assert nvr.credential is None
            tokens = await nvr.finish_mfa(res.mfa_required.ticket, second_factor(), timeout=30)
            assert tokens.access_token
            assert nvr.credential == tokens.access_token

            me = await nvr.auth.WhoAmI(auth_service_pb2.WhoAmIRequest(), timeout=30)
            assert me.user.username == user().lower()
            assert me.session_id == tokens.session_id

    run(scenario())


def test_aio_refreshes_expiring_access_token() -> None:
    async def scenario() -> None:
        # A margin longer than any token lifetime makes every authenticated call refresh first.
        async with AsyncOpenNvrClient(target(), refresh_margin=10**9) as nvr:
            first = await sign_in(nvr)
            me = await nvr.whoami(timeout=30)
            assert nvr.tokens is not None
            assert nvr.tokens.refresh_token != first.refresh_token, "the refresh token did not rotate"
            assert nvr.credential == nvr.tokens.access_token != first.access_token
            assert me.session_id == first.session_id

    run(scenario())


def test_aio_watches_the_event_of_a_camera_it_creates() -> None:
    async def scenario() -> None:
        async with AsyncOpenNvrClient(target()) as nvr:
            await sign_in(nvr)
            watch = nvr.events.WatchEvents(
                event_service_pb2.WatchEventsRequest(types=[common_pb2.EVENT_TYPE_CAMERA_CREATED]), timeout=60
            )
            await watch.initial_metadata()  # the server has subscribed: nothing from now on is missed
            name = f"aio smoke {uuid.uuid4().hex[:8]}"
            # Disabled and with no media server configured: the address is only stored, never dialled.
            camera = (
                await nvr.cameras.CreateCamera(
                    camera_service_pb2.CreateCameraRequest(
                        camera=camera_service_pb2.Camera(name=name, source_url="rtsp://10.255.0.1:554/aio-smoke")
                    ),
                    timeout=30,
                )
            ).camera
            try:
                async for message in watch:
                    if message.WhichOneof("kind") == "event" and message.event.camera_id == camera.id:
                        assert message.event.type == common_pb2.EVENT_TYPE_CAMERA_CREATED
                        assert message.event.camera_config.camera_name == name
                        break
                else:
                    pytest.fail("the stream ended before the camera's event came")
                watch.cancel()
            finally:
                await nvr.cameras.DeleteCamera(camera_service_pb2.DeleteCameraRequest(camera_id=camera.id), timeout=30)

    run(scenario())


def test_aio_wrong_password_raises_unauthenticated_with_invalid_credentials() -> None:
    async def scenario() -> None:
        async with AsyncOpenNvrClient(target()) as nvr:
            with pytest.raises(errors.Unauthenticated) as err:
                await nvr.login(user(), password() + "-wrong", timeout=30)
            assert err.value.reason == "ERROR_REASON_INVALID_CREDENTIALS", err.value
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert nvr.credential is None

    run(scenario())


def test_aio_malformed_recovery_code_raises_invalid_argument_naming_the_field() -> None:
    async def scenario() -> None:
        async with AsyncOpenNvrClient(target()) as nvr:
            ticket = (await nvr.login(user(), password(), timeout=30)).mfa_required.ticket
            with pytest.raises(errors.InvalidArgument) as err:
                await nvr.finish_mfa(ticket, auth_service_pb2.SecondFactor(recovery_code="not-a-code"), timeout=30)
            assert err.value.field == "factor.recovery_code", err.value

    run(scenario())


def test_aio_watch_without_credential_raises_unauthenticated_from_the_stream() -> None:
    async def scenario() -> None:
        async with AsyncOpenNvrClient(target()) as nvr:
            watch = nvr.events.WatchEvents(event_service_pb2.WatchEventsRequest(), timeout=30)
            with pytest.raises(errors.Unauthenticated):
                await watch.read()

    run(scenario())
