"""Cache keys: who a request speaks for (without the secret), and the hash that keys one response."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx

__all__ = ["cache_key", "identity_of", "request_key"]


def _jwt_subject(token: str) -> str | None:
    """The ``sub`` claim of a JWT, unverified (only to key the cache by user)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def identity_of(authorization: str | None) -> str:
    """Who a request speaks for, without the secret: a login's principal, or a hash of the credential."""
    if not authorization:
        return "anonymous"
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer":
        subject = _jwt_subject(credential.strip())
        if subject:
            return f"principal:{subject}"
    return "credential:" + hashlib.sha256(authorization.encode()).hexdigest()


def cache_key(method: str, url: str, accept: str, identity: str) -> str:
    """The key of one response: a hash, so the file holds neither URLs nor credentials in the clear."""
    text = "\n".join((method.upper(), url, accept.strip().lower(), identity))
    return hashlib.sha256(text.encode()).hexdigest()


def request_key(request: httpx.Request) -> str:
    return cache_key(
        request.method, str(request.url), request.headers.get("accept", ""),
        identity_of(request.headers.get("authorization")),
    )
