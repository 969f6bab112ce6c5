"""``TiledAuth``: an httpx.Auth over a login session kept as token files in one directory.

The reference client's layout and protocol: the directory holds one file per
token (``access_token``, ``refresh_token``, ``id_token``; mode 0600). A 401
first re-reads the files (another process may have refreshed), then sends the
refresh request *through the same client* (so it works over in-process apps
too): a form with ``client_id`` when the identity provider issues the tokens
(external, OAuth2 providers), else Tiled's own JSON refresh with the CSRF
header. Without a directory the tokens live in memory only.

tiled_core's own password logins use ``TokenAuth`` (one locked JSON file,
refreshed ahead of expiry); ``TiledAuth`` serves logins through an external
provider (``Context.login`` with a device-code flow) and token directories
written by other tools.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Generator, Mapping
from pathlib import Path

import httpx

from ...transport import LoginRequired

__all__ = ["TOKEN_NAMES", "TiledAuth", "build_refresh_request"]

TOKEN_NAMES = ("access_token", "refresh_token", "id_token")


def build_refresh_request(refresh_url: str, refresh_token: str, csrf_token: str | None,
                          client_id: str | None = None, scopes: str | None = None) -> httpx.Request:
    """The request that trades ``refresh_token`` for new tokens: the OAuth2 form (with ``client_id``)
    for an identity provider's tokens, else Tiled's JSON body with the CSRF header."""
    if client_id:
        form = {"client_id": client_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
        if scopes:
            form["scope"] = scopes
        return httpx.Request("POST", refresh_url, data=form,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    return httpx.Request("POST", refresh_url, json={"refresh_token": refresh_token},
                         headers={"x-csrf": csrf_token or ""})


class TiledAuth(httpx.Auth):
    """Sends ``Authorization: Bearer`` from a token directory; refreshes on a 401.

    Arguments:
        refresh_url: where refresh requests go (the server's ``refresh_session`` link).
        csrf_token: the server's ``tiled_csrf`` cookie (for Tiled's own refresh).
        token_directory: where the token files live (created, mode 0700), or
            None to keep the tokens in memory only.
        client_id, scopes: the identity provider's client and scopes, for its refresh form.

    Raises ``CannotRefreshAuthentication`` (``LoginRequired``) when there is no
    refresh token or the server refuses it. Its repr shows no token; a pickle
    carries the directory, never the tokens.
    """

    def __init__(self, refresh_url: str, csrf_token: str | None, token_directory: str | os.PathLike | None,
                 client_id: str | None = None, scopes: str | None = None) -> None:
        self.refresh_url = str(refresh_url)
        self.csrf_token = csrf_token
        self.client_id = client_id
        self.scopes = scopes
        self.token_directory = None if token_directory is None else self._writable(Path(token_directory))
        self.tokens: dict[str, str] = {}
        self._lock = threading.RLock()

    @staticmethod
    def _writable(directory: Path) -> Path:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ValueError(f"the token directory {directory} is not writable")
        return directory

    def __repr__(self) -> str:
        where = "memory" if self.token_directory is None else str(self.token_directory)
        return f"TiledAuth(refresh_url={self.refresh_url!r}, tokens in {where})"

    def __getstate__(self):
        return {"refresh_url": self.refresh_url, "csrf_token": self.csrf_token, "client_id": self.client_id,
                "scopes": self.scopes, "token_directory": self.token_directory}

    def __setstate__(self, state) -> None:
        self.__init__(**state)  # the tokens are read from the directory again, never from the pickle

    # -- the token files -----------------------------------------------------
    def sync_get_token(self, key: str, reload_from_disk: bool = False) -> str | None:
        """The token ``key`` (from memory, or the directory when not in memory or ``reload_from_disk``)."""
        if not reload_from_disk and key in self.tokens:
            return self.tokens[key]
        if self.token_directory is None:
            return self.tokens.get(key)
        with self._lock:
            try:
                token = (self.token_directory / key).read_text()
            except FileNotFoundError:
                self.tokens.pop(key, None)
                return None
            self.tokens[key] = token
            return token

    def sync_set_token(self, key: str, value: str) -> None:
        """Keep ``value`` as token ``key`` (in memory, and in a 0600 file of the directory)."""
        if not isinstance(value, str):
            raise ValueError(f"a token is a string, not {type(value).__name__}")
        with self._lock:
            if self.token_directory is not None:
                path = self.token_directory / key
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as file:
                    file.write(value)
            self.tokens[key] = value

    def sync_clear_token(self, key: str) -> None:
        """Forget token ``key`` here and in the directory."""
        with self._lock:
            if self.token_directory is not None:
                with contextlib.suppress(FileNotFoundError):
                    (self.token_directory / key).unlink()
            self.tokens.pop(key, None)

    def sync_tokens(self, tokens: Mapping[str, str]) -> None:
        """Keep a token reply's refresh, access and (if any) id tokens."""
        self.sync_set_token("refresh_token", tokens["refresh_token"])
        self.sync_set_token("access_token", tokens["access_token"])
        if tokens.get("id_token"):
            self.sync_set_token("id_token", tokens["id_token"])

    def clear(self) -> None:
        """Forget every token (logout)."""
        for key in TOKEN_NAMES:
            self.sync_clear_token(key)

    # -- the flow ------------------------------------------------------------
    def refresh_request(self) -> httpx.Request:
        """The refresh request for the stored refresh token (LoginRequired when there is none)."""
        refresh_token = self.sync_get_token("refresh_token", reload_from_disk=True)
        if refresh_token is None:
            raise LoginRequired("no refresh token was found; log in again (client.login() or Context.login())")
        return build_refresh_request(self.refresh_url, refresh_token, self.csrf_token, self.client_id, self.scopes)

    def refused(self, response: httpx.Response) -> bool:
        """Whether a refresh reply refused the refresh token (then forgotten); raises LoginRequired if so."""
        if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.BAD_REQUEST):
            self.sync_clear_token("refresh_token")
            raise LoginRequired("the server refused to refresh the login session; log in again")
        return False

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.sync_get_token("access_token")
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != httpx.codes.UNAUTHORIZED:
                return
            newer = self.sync_get_token("access_token", reload_from_disk=True)
            if newer is not None and newer != token:  # another process refreshed meanwhile
                request.headers["Authorization"] = f"Bearer {newer}"
                response = yield request
                if response.status_code != httpx.codes.UNAUTHORIZED:
                    return
            self.sync_clear_token("access_token")
        reply = yield self.refresh_request()
        self.refused(reply)
        reply.read()
        if reply.is_error:
            from ..utils import handle_error

            handle_error(reply)
        tokens = reply.json()
        self.sync_tokens(tokens)
        request.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        yield request

    async def async_auth_flow(self, request):  # pragma: no cover - tiled_core is synchronous
        raise NotImplementedError("tiled_core's clients are synchronous")
        yield request
