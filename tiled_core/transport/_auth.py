"""Credentials attached to each request, never to the URL and never shown."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Mapping

import httpx

from ._errors import AuthenticationError, LoginRequired
from ._tokens import Tokens, TokenStore

__all__ = ["ApiKeyAuth", "TokenAuth"]


class ApiKeyAuth(httpx.Auth):
    """Sends ``Authorization: Apikey <key>``; its repr never shows the key."""

    def __init__(self, api_key: str) -> None:
        if not isinstance(api_key, str):
            raise TypeError(f"api_key must be a string, not {type(api_key).__name__}")
        if not api_key:
            raise ValueError("api_key is empty: give the key, or leave api_key out (None) to use TILED_API_KEY "
                             "or a login")
        if any(ch.isspace() for ch in api_key):
            raise ValueError("api_key must not contain whitespace")
        if not (api_key.isascii() and api_key.isprintable()):
            raise ValueError("api_key must be printable ASCII (it travels in an HTTP header)")
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


class TokenAuth(httpx.Auth):
    """Sends ``Authorization: Bearer <access token>`` from a login session.

    The access token is refreshed a little ahead of its expiry, and once more
    if the server still answers 401. Refreshing happens under the store's lock
    and first re-reads the store, so threads and processes sharing a token file
    refresh once between them and never overwrite newer tokens with older ones.

    Arguments:
        store: where the tokens live (memory or a shared file).
        refresh: sends the refresh request once (no retries: the request that
            needed it is retried as a whole); takes the refresh token, returns
            the server's reply or raises AuthenticationError when refused.
        server: the server's address, for error messages.
    """

    def __init__(self, store: TokenStore, refresh: Callable[[str], Mapping], *, server: str) -> None:
        self._store = store
        self._refresh = refresh
        self._server = server
        self._lock = threading.Lock()
        self._tokens = store.load()

    @property
    def store(self) -> TokenStore:
        return self._store

    @property
    def tokens(self) -> Tokens | None:
        """The tokens this process uses now (None once logged out)."""
        return self._tokens

    @property
    def principal(self) -> str | None:
        return self._tokens.principal if self._tokens is not None else None

    def _login_required(self, why: str) -> LoginRequired:
        return LoginRequired(
            401, f"{why}; log in again (client.login() or Context.login())", url=self._server
        )

    def access_token(self) -> str:
        """A current access token, refreshed first if it is about to expire."""
        tokens = self._tokens
        if tokens is None:
            tokens = self.renew(None)
        elif tokens.expiring():
            tokens = self.renew(tokens.access_token)
        return tokens.access_token

    def renew(self, stale: str | None, *, force: bool = False) -> Tokens:
        """New tokens, unless someone else already replaced ``stale`` with fresh ones (``force``: always)."""
        with self._lock, self._store.locked():
            current = self._store.load()
            if current is None:
                self._tokens = None
                raise self._login_required("not logged in (no tokens, or logged out elsewhere)")
            if not force and current.access_token != stale and not current.expiring():
                self._tokens = current
                return current
            try:
                reply = self._refresh(current.refresh_token)
            except AuthenticationError:
                # Refused for good (expired or revoked): forget it so nothing retries it.
                self._store.clear()
                self._tokens = None
                raise self._login_required("the login session has expired or was revoked") from None
            tokens = Tokens.from_response(reply, previous=current)
            self._store.save(tokens)
            self._tokens = tokens
            return tokens

    def forget(self) -> None:
        """Drop the tokens here and in the store (logout)."""
        with self._lock, self._store.locked():
            self._store.clear()
            self._tokens = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}"}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # Expired early (clock skew) or revoked: refresh once and resend.
            request.headers["Authorization"] = f"Bearer {self.renew(token).access_token}"
            yield request

    def __repr__(self) -> str:
        return f"TokenAuth({self._store!r})"

    def __reduce__(self):
        raise TypeError("TokenAuth holds a login session and is not picklable; ship a credential source instead")
