"""OpenNVR Python SDK.

The generated API lives in :mod:`opennvr.v1` (``auth_service_pb2`` messages, ``auth_service_pb2_grpc``
stubs, and so on for every service); :mod:`opennvr.client` adds a thin client that signs in and
sends the bearer credential.
"""

from opennvr.client import BearerInterceptor, OpenNvrClient, connect

__all__ = ["BearerInterceptor", "OpenNvrClient", "connect"]
