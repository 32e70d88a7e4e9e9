"""OpenNVR Python SDK.

The generated API lives in :mod:`opennvr.v1` (``auth_service_pb2`` messages, ``auth_service_pb2_grpc``
stubs, and so on for every service); :mod:`opennvr.client` adds a thin client that signs in and
sends the bearer credential, :mod:`opennvr.aio` the same for asyncio, and :mod:`opennvr.errors` the
typed errors both raise.
"""

from opennvr import errors
from opennvr.aio import AsyncOpenNvrClient
from opennvr.client import BearerInterceptor, OpenNvrClient, connect
from opennvr.errors import OpenNvrError

__all__ = ["AsyncOpenNvrClient", "BearerInterceptor", "OpenNvrClient", "OpenNvrError", "connect", "errors"]
