"""A thin, hand-written client over the generated OpenNVR stubs.

``connect(target)`` opens a gRPC channel; ``OpenNvrClient`` wraps it with an interceptor that sends
``authorization: Bearer <credential>``, keeps the tokens of the signed-in session and raises failed
calls as :mod:`opennvr.errors`::

    from opennvr import OpenNvrClient

    with OpenNvrClient("127.0.0.1:7450") as nvr:
        nvr.login("admin", "a long password")
        print(nvr.auth.WhoAmI(auth_service_pb2.WhoAmIRequest()).user.username)

:mod:`opennvr.aio` has the same client for asyncio.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Optional, Sequence, Tuple

import grpc

from opennvr import errors
from opennvr._session import PUBLIC_METHODS, Session, Stubs, wants_credential, with_bearer
from opennvr.v1 import auth_service_pb2

__all__ = ["connect", "OpenNvrClient", "BearerInterceptor", "PUBLIC_METHODS"]

ChannelOptions = Sequence[Tuple[str, Any]]


def connect(
    target: str,
    *,
    credentials: Optional[grpc.ChannelCredentials] = None,
    options: Optional[ChannelOptions] = None,
) -> grpc.Channel:
    """Opens a channel to an OpenNVR server, e.g. ``connect("127.0.0.1:7450")``.

    Without ``credentials`` the channel is plain HTTP/2 (h2c); pass ``grpc.ssl_channel_credentials()``
    (or your own) for a server with TLS.
    """
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    """``grpc.ClientCallDetails`` with changed fields (a namedtuple subclass, as gRPC documents)."""


class _Typed:
    """What an interceptor's continuation returned (a ``grpc.Call`` and ``grpc.Future``; for a
    response stream also its iterator), with the call's failure raised as an
    :class:`~opennvr.errors.OpenNvrError`. Everything else is passed through."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def result(self, timeout: Optional[float] = None) -> Any:
        try:
            return self._inner.result(timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        e = self._inner.exception(timeout)
        return errors.from_rpc_error(e) if isinstance(e, grpc.RpcError) else e

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._inner.add_done_callback(lambda _: fn(self))

    def __iter__(self) -> "_Typed":
        return self

    def __next__(self) -> Any:
        try:
            return next(self._inner)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None


class BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <credential()>`` to every non-public call, and raises failed
    calls as :mod:`opennvr.errors` (``OpenNvrError`` subclasses, still ``grpc.RpcError``).

    ``before_call`` (if given) runs first for non-public calls; OpenNvrClient uses it to refresh an
    access token that is about to expire.
    """

    def __init__(
        self,
        credential: Callable[[], Optional[str]],
        before_call: Optional[Callable[[], None]] = None,
    ) -> None:
        self._credential = credential
        self._before_call = before_call

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        if not wants_credential(details.method, details.metadata):
            return details
        if self._before_call is not None:
            self._before_call()
        credential = self._credential()
        if not credential:
            return details
        return _CallDetails(
            details.method,
            details.timeout,
            with_bearer(details.metadata, credential),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return _Typed(continuation(self._details(client_call_details), request))

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return _Typed(continuation(self._details(client_call_details), request))

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return _Typed(continuation(self._details(client_call_details), request_iterator))

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return _Typed(continuation(self._details(client_call_details), request_iterator))



class OpenNvrClient(Stubs):
    """Holds the session's tokens and one stub per OpenNVR service.

    ``target_or_channel`` is ``"host:port"`` (opened with :func:`connect`) or an existing channel.
    ``credential`` may be an API key secret or an access token obtained elsewhere. With a refresh
    token held, an access token that expires within ``refresh_margin`` seconds is refreshed before the
    next call (``refresh_margin=0`` turns that off). Failed calls raise :mod:`opennvr.errors`.
    """

    def __init__(
        self,
        target_or_channel: "str | grpc.Channel",
        *,
        credential: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: Optional[ChannelOptions] = None,
        refresh_margin: float = 30.0,
    ) -> None:
        if isinstance(target_or_channel, str):
            self._raw_channel = connect(target_or_channel, credentials=credentials, options=options)
            self._owns_channel = True
        else:
            self._raw_channel = target_or_channel
            self._owns_channel = False
        self._lock = threading.Lock()
        self._session = Session(credential, refresh_margin)
        self.channel = grpc.intercept_channel(
            self._raw_channel, BearerInterceptor(lambda: self._session.credential, self._refresh_if_needed)
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

    def set_credential(self, credential: Optional[str]) -> None:
        """Uses an API key secret (or an access token obtained elsewhere); forgets held tokens."""
        with self._lock:
            self._session.use(credential)

    # ---- sign-in ----

    def bootstrap(
        self, setup_token: str, username: str, password: str, display_name: str = "", **call: Any
    ) -> auth_service_pb2.Tokens:
        """Creates the first administrator with the one-time setup token and signs it in."""
        res = self.auth.Bootstrap(
            auth_service_pb2.BootstrapRequest(
                setup_token=setup_token, username=username, password=password, display_name=display_name
            ),
            **call,
        )
        with self._lock:
            return self._session.keep(res.tokens)

    def login(self, username: str, password: str, **call: Any) -> auth_service_pb2.LoginResponse:
        """Signs in with a password. Keeps the tokens when ``WhichOneof("result") == "tokens"``;
        for ``"mfa_required"`` finish with :meth:`finish_mfa` and the challenge's ticket.

        Raises :class:`opennvr.errors.Unauthenticated` (reason ``ERROR_REASON_INVALID_CREDENTIALS``)
        for wrong credentials.
        """
        res = self.auth.Login(auth_service_pb2.LoginRequest(username=username, password=password), **call)
        with self._lock:
            return self._session.keep_login(res)

    def finish_mfa(
        self, ticket: str, factor: auth_service_pb2.SecondFactor, **call: Any
    ) -> auth_service_pb2.Tokens:
        """Finishes a login that asked for a second factor (TOTP code, recovery code or passkey)."""
        res = self.auth.FinishMfa(auth_service_pb2.FinishMfaRequest(ticket=ticket, factor=factor), **call)
        with self._lock:
            return self._session.keep(res.tokens)

    def step_up_totp(self, code: str, **call: Any) -> auth_service_pb2.StepUpResponse:
        """Presents a TOTP code on the current session, so that step-up RPCs pass for a few minutes
        (until then they raise :class:`opennvr.errors.StepUpRequired`)."""
        return self.auth.StepUp(
            auth_service_pb2.StepUpRequest(factor=auth_service_pb2.SecondFactor(totp_code=code)), **call
        )

    def refresh(self, **call: Any) -> auth_service_pb2.Tokens:
        """Exchanges the held refresh token for new tokens of the same session."""
        with self._lock:
            return self._refresh_locked(**call)

    def _refresh_locked(self, **call: Any) -> auth_service_pb2.Tokens:
        res = self.auth.Refresh(self._session.refresh_request(), **call)
        return self._session.keep(res.tokens)

    def _refresh_if_needed(self) -> None:
        if not self._session.needs_refresh():
            return
        with self._lock:
            # Calls that waited for the lock find the token already refreshed.
            if self._session.needs_refresh():
                self._refresh_locked()

    def logout(self, **call: Any) -> None:
        """Ends the session on the server and forgets the tokens."""
        try:
            if self._session.credential:
                self.auth.Logout(auth_service_pb2.LogoutRequest(), **call)
        finally:
            with self._lock:
                self._session.forget()

    def whoami(self, **call: Any) -> auth_service_pb2.WhoAmIResponse:
        """Describes the caller (user, session, permissions)."""
        return self.auth.WhoAmI(auth_service_pb2.WhoAmIRequest(), **call)

    # ---- lifetime ----

    def close(self) -> None:
        """Closes the channel if this client opened it."""
        if self._owns_channel:
            self._raw_channel.close()

    def __enter__(self) -> "OpenNvrClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
