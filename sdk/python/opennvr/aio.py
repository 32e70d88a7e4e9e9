"""The OpenNVR client for asyncio (``grpc.aio``), beside the synchronous :mod:`opennvr.client`.

Create it inside a coroutine (a ``grpc.aio`` channel belongs to the running event loop)::

    import asyncio
    from opennvr.aio import AsyncOpenNvrClient
    from opennvr.v1 import auth_service_pb2, event_service_pb2

    async def main() -> None:
        async with AsyncOpenNvrClient("127.0.0.1:7450") as nvr:
            await nvr.login("admin", "a long password")
            print((await nvr.whoami()).user.username)
            async for message in nvr.events.WatchEvents(event_service_pb2.WatchEventsRequest()):
                print(message)

    asyncio.run(main())

Its interceptors send ``authorization: Bearer <credential>`` on every non-public call, refresh an
access token about to expire first (one refresh at a time, behind an ``asyncio.Lock``), and raise
failed calls as :mod:`opennvr.errors`.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable, List, Optional, Sequence

import grpc
import grpc.aio

from opennvr import errors
from opennvr._session import Session, Stubs, wants_credential, with_bearer
from opennvr.client import ChannelOptions
from opennvr.v1 import auth_service_pb2

__all__ = ["AsyncOpenNvrClient", "bearer_interceptors", "connect"]


def connect(
    target: str,
    *,
    credentials: Optional[grpc.ChannelCredentials] = None,
    options: Optional[ChannelOptions] = None,
    interceptors: Optional[Sequence[grpc.aio.ClientInterceptor]] = None,
) -> grpc.aio.Channel:
    """Opens an asyncio channel to an OpenNVR server: plain HTTP/2 (h2c) without ``credentials``."""
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)


class _Bearer:
    """What the interceptors of every call shape share: adding the bearer credential."""

    def __init__(
        self,
        credential: Callable[[], Optional[str]],
        before_call: Optional[Callable[[], Awaitable[None]]],
    ) -> None:
        self._credential = credential
        self._before_call = before_call

    async def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if not wants_credential(details.method, details.metadata):
            return details
        if self._before_call is not None:
            await self._before_call()
        credential = self._credential()
        if not credential:
            return details
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*with_bearer(details.metadata, credential)),
            details.credentials,
            details.wait_for_ready,
        )


class _UnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        call = await continuation(await self._details(client_call_details), request)
        try:
            await call
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None
        return call


class _UnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        call = await continuation(await self._details(client_call_details), request)
        return _typed_responses(call)


async def _typed_responses(call: Any) -> AsyncIterator[Any]:
    # grpc.aio keeps the call itself for initial_metadata(), cancel() and the like; only the
    # responses go through here.
    try:
        async for response in call:
            yield response
    except grpc.RpcError as e:
        raise errors.from_rpc_error(e) from None


def bearer_interceptors(
    credential: Callable[[], Optional[str]],
    before_call: Optional[Callable[[], Awaitable[None]]] = None,
) -> List[grpc.aio.ClientInterceptor]:
    """Interceptors for a ``grpc.aio`` channel that add ``authorization: Bearer <credential()>``
    to every non-public call (after awaiting ``before_call``, if given) and raise failed calls as
    :mod:`opennvr.errors`.

    ``grpc.aio`` files an interceptor under one call shape only, hence one per shape: unary and
    server-streaming, the shapes the OpenNVR API has.
    """
    return [_UnaryUnary(credential, before_call), _UnaryStream(credential, before_call)]


class AsyncOpenNvrClient(Stubs):
    """:class:`opennvr.OpenNvrClient` for asyncio: the session's tokens and one stub per service.

    ``target`` is ``"host:port"``; a ``grpc.aio`` channel takes its interceptors when it is
    opened, so the client opens its own (pass yours as ``interceptors``: they run after the
    client's and see the credential). ``credential`` may be an API key secret or an access token
    obtained elsewhere. With a refresh token held, an access token that expires within
    ``refresh_margin`` seconds is refreshed before the next call (``0`` turns that off).
    Failed calls raise :mod:`opennvr.errors`.
    """

    def __init__(
        self,
        target: str,
        *,
        credential: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: Optional[ChannelOptions] = None,
        refresh_margin: float = 30.0,
        interceptors: Optional[Sequence[grpc.aio.ClientInterceptor]] = None,
    ) -> None:
        self._lock = asyncio.Lock()
        self._session = Session(credential, refresh_margin)
        own = bearer_interceptors(lambda: self._session.credential, self._refresh_if_needed)
        self.channel = connect(
            target, credentials=credentials, options=options, interceptors=[*own, *(interceptors or ())]
        )
        self._attach(self.channel)

    # ---- credential and tokens ----

    @property
    def credential(self) -> Optional[str]:
        """What is sent as the bearer credential: an access token or an API key secret."""
        return self._session.credential

    @property
    def tokens(self) -> Optional[auth_service_pb2.Tokens]:
        """The tokens of the current session, if signed in with a password."""
        return self._session.tokens

    async def set_credential(self, credential: Optional[str]) -> None:
        """Uses an API key secret (or an access token obtained elsewhere); forgets held tokens."""
        async with self._lock:
            self._session.use(credential)

    # ---- sign-in ----

    async def bootstrap(
        self, setup_token: str, username: str, password: str, display_name: str = "", **call: Any
    ) -> auth_service_pb2.Tokens:
        """Creates the first administrator with the one-time setup token and signs it in."""
        res = await self.auth.Bootstrap(
            auth_service_pb2.BootstrapRequest(
                setup_token=setup_token, username=username, password=password, display_name=display_name
            ),
            **call,
        )
        async with self._lock:
            return self._session.keep(res.tokens)

    async def login(self, username: str, password: str, **call: Any) -> auth_service_pb2.LoginResponse:
        """Signs in with a password. Keeps the tokens when ``WhichOneof("result") == "tokens"``;
        for ``"mfa_required"`` finish with :meth:`finish_mfa` and the challenge's ticket.

        Raises :class:`opennvr.errors.Unauthenticated` (reason ``ERROR_REASON_INVALID_CREDENTIALS``)
        for wrong credentials.
        """
        res = await self.auth.Login(auth_service_pb2.LoginRequest(username=username, password=password), **call)
        async with self._lock:
            return self._session.keep_login(res)

    async def finish_mfa(
        self, ticket: str, factor: auth_service_pb2.SecondFactor, **call: Any
    ) -> auth_service_pb2.Tokens:
        """Finishes a login that asked for a second factor (TOTP code, recovery code or passkey)."""
        res = await self.auth.FinishMfa(auth_service_pb2.FinishMfaRequest(ticket=ticket, factor=factor), **call)
        async with self._lock:
            return self._session.keep(res.tokens)

    async def step_up_totp(self, code: str, **call: Any) -> auth_service_pb2.StepUpResponse:
        """Presents a TOTP code on the current session, so that step-up RPCs pass for a few minutes
        (until then they raise :class:`opennvr.errors.StepUpRequired`)."""
        return await self.auth.StepUp(
            auth_service_pb2.StepUpRequest(factor=auth_service_pb2.SecondFactor(totp_code=code)), **call
        )

    async def refresh(self, **call: Any) -> auth_service_pb2.Tokens:
        """Exchanges the held refresh token for new tokens of the same session."""
        async with self._lock:
            return await self._refresh_locked(**call)

    async def _refresh_locked(self, **call: Any) -> auth_service_pb2.Tokens:
        res = await self.auth.Refresh(self._session.refresh_request(), **call)
        return self._session.keep(res.tokens)

    async def _refresh_if_needed(self) -> None:
        if not self._session.needs_refresh():
            return
        async with self._lock:
            # Calls that waited for the lock find the token already refreshed.
            if self._session.needs_refresh():
                await self._refresh_locked()

    async def logout(self, **call: Any) -> None:
        """Ends the session on the server and forgets the tokens."""
        try:
            if self._session.credential:
                await self.auth.Logout(auth_service_pb2.LogoutRequest(), **call)
        finally:
            async with self._lock:
                self._session.forget()

    async def whoami(self, **call: Any) -> auth_service_pb2.WhoAmIResponse:
        """Describes the caller (user, session, permissions)."""
        return await self.auth.WhoAmI(auth_service_pb2.WhoAmIRequest(), **call)

    # ---- lifetime ----

    async def close(self) -> None:
        """Closes the channel (calls still running are cancelled)."""
        await self.channel.close()

    async def __aenter__(self) -> "AsyncOpenNvrClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
