"""Transport: the only layer that talks HTTP."""

from ._auth import ApiKeyAuth, TokenAuth
from ._cache import Cache, CacheWarning
from ._config import Limits, RetryPolicy, Timeouts
from ._errors import (
    AuthenticationError,
    ClientClosed,
    ClientError,
    LoginRequired,
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
from ._tokens import FileTokenStore, MemoryTokenStore, Tokens, TokenStore, cache_directory, token_file_for
from ._content_decoders import register as _register_content_decoders

_register_content_decoders()

__all__ = [
    "ApiKeyAuth", "TokenAuth", "Cache", "CacheWarning", "Tokens", "TokenStore", "MemoryTokenStore",
    "FileTokenStore", "cache_directory", "token_file_for", "Limits", "RetryPolicy", "Timeouts", "Session", "Params",
    "TiledError", "TransportError", "ConnectionFailed", "RequestTimeout", "TruncatedResponse",
    "MalformedResponse", "ServerError", "ClientError", "AuthenticationError", "LoginRequired", "PermissionDenied",
    "NotFound", "NotAcceptable", "Conflict", "ClientClosed",
]
