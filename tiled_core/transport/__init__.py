"""Transport: the only layer that talks HTTP."""

from ._auth import ApiKeyAuth
from ._config import Limits, RetryPolicy, Timeouts
from ._errors import (
    AuthenticationError,
    ClientError,
    Conflict,
    ConnectionFailed,
    MalformedResponse,
    NotAcceptable,
    NotFound,
    PermissionDenied,
    RequestTimeout,
    ServerError,
    TiledError,
    TransportError,
    TruncatedResponse,
)
from ._session import Params, Session

__all__ = [
    "ApiKeyAuth", "Limits", "RetryPolicy", "Timeouts", "Session", "Params",
    "TiledError", "TransportError", "ConnectionFailed", "RequestTimeout", "TruncatedResponse",
    "MalformedResponse", "ServerError", "ClientError", "AuthenticationError", "PermissionDenied",
    "NotFound", "NotAcceptable", "Conflict",
]
