"""What a session's credential means for caching, error hints and the bulk path (never the secret)."""

from __future__ import annotations

import httpx

from ._auth import ApiKeyAuth, TokenAuth
from ._cache import identity_of

__all__ = ["identity", "auth_hint", "header_auth"]


def identity(auth: httpx.Auth | None, authorization_header: str | None) -> str:
    """Who requests speak for, without the secret (keys the response cache)."""
    if isinstance(auth, TokenAuth) and auth.principal:
        return f"principal:{auth.principal}"
    if isinstance(auth, ApiKeyAuth):
        return identity_of(auth.headers()["Authorization"])
    if auth is not None:
        return f"auth:{id(auth)}"  # custom auth: its identity is unknown, keep it apart
    return identity_of(authorization_header)


def auth_hint(auth: httpx.Auth | None, has_credentials: bool, note: str | None = None) -> str:
    """What to do about a 401, for the error message (``note``: said instead when there is no credential)."""
    if isinstance(auth, ApiKeyAuth):
        return "the API key is wrong, expired or revoked"
    if isinstance(auth, TokenAuth):
        return "the login session is no longer valid; log in again"
    if has_credentials:
        return "check the credentials given in headers or auth"
    return note or "pass api_key=, set TILED_API_KEY, or log in"


def header_auth(auth: httpx.Auth | None) -> dict[str, str] | None:
    """The auth header for the bulk path, or None when the credential cannot be a plain header."""
    if auth is None:
        return {}
    if isinstance(auth, (ApiKeyAuth, TokenAuth)):
        return auth.headers()
    return None
