"""Credentials attached to each request, never to the URL and never shown."""

from __future__ import annotations

from collections.abc import Generator

import httpx

__all__ = ["ApiKeyAuth"]


class ApiKeyAuth(httpx.Auth):
    """Sends ``Authorization: Apikey <key>``; its repr never shows the key."""

    def __init__(self, api_key: str) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string")
        if any(ch.isspace() for ch in api_key):
            raise ValueError("api_key must not contain whitespace")
        self._api_key = api_key

    @property
    def secret(self) -> str:
        """The key itself (for out-of-band shipping to trusted workers only)."""
        return self._api_key

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Apikey {self._api_key}"}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers())
        yield request

    def __repr__(self) -> str:
        return "ApiKeyAuth(api_key='***')"

    def __reduce__(self):
        raise TypeError("ApiKeyAuth holds a secret and is not picklable; ship a credential source instead")
