"""Logins through an external identity provider (OAuth2 device-code flow), for ``Context``.

``ExternalLogins`` is mixed into ``Context``. It keeps such sessions as a
``TiledAuth`` over a token directory (``_token_directory()``, under
``_token_cache``), as the reference client does, so a session opened by
either client is used by the other; ``configure_auth(tokens)`` installs a
token reply obtained elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import platformdirs

from ._tiled_auth import TiledAuth

__all__ = ["ExternalLogins"]


class ExternalLogins:
    """Mixin of ``Context`` (needs ``_session``, ``server_info``, ``api_uri``, ``http_client``)."""

    _token_cache_override: Path | None = None

    @property
    def _token_cache(self) -> Path:
        """Where token directories live, as for the reference client: ``$TILED_CACHE_DIR/tokens``, else
        ``tokens`` in the user's cache directory for ``tiled``; settable."""
        if self._token_cache_override is not None:
            return self._token_cache_override
        return Path(os.environ.get("TILED_CACHE_DIR") or platformdirs.user_cache_dir("tiled"), "tokens")

    @_token_cache.setter
    def _token_cache(self, path) -> None:
        self._token_cache_override = Path(path)

    def _token_directory(self) -> Path:
        """This server's token directory (its API URI, quoted into one file name)."""
        return Path(self._token_cache, quote_plus(str(self.api_uri)))

    def _single_provider(self) -> Any:
        providers = (self.server_info.get("authentication") or {}).get("providers") or []
        return providers[0] if len(providers) == 1 else None

    @property
    def client_id(self) -> str | None:
        """The identity provider's OAuth2 client id, when the server has one provider and it has one."""
        provider = self._single_provider()
        return (provider.get("links") or {}).get("client_id") if provider is not None else None

    @property
    def scopes(self) -> str | None:
        """The scopes a refresh asks for, when the single provider wants extra ones."""
        provider = self._single_provider()
        extra = (provider.get("extra_scopes") or []) if provider is not None else []
        return " ".join(sorted({"openid", "offline_access", *extra})) if extra else None

    def _tiled_auth(self, directory: Path | None) -> TiledAuth:
        links = (self.server_info.get("authentication") or {}).get("links") or {}
        refresh = links.get("refresh_session") or self._session.url("auth/session/refresh")
        return TiledAuth(refresh, self.http_client.cookies.get("tiled_csrf"), directory, self.client_id, self.scopes)

    def configure_auth(self, tokens, remember_me: bool = True) -> None:
        """Use a token reply (``access_token``, ``refresh_token``) from an external login.

        With ``remember_me`` the tokens go to this server's token directory
        (mode 0600 files, used by later connections); otherwise memory only.
        """
        if self._session.has_api_key:
            raise RuntimeError("An API key is set. Cannot use both an API key and a login session.")
        if not remember_me:
            self._tiled_auth(self._token_directory()).clear()  # no older session left behind
        auth = self._tiled_auth(self._token_directory() if remember_me else None)
        auth.sync_tokens(tokens)
        self._session.set_auth(auth)
        self._external_login_installed(auth)

    def _use_token_directory(self) -> bool:
        """Use a session kept in this server's token directory, if there is one (no request is sent)."""
        directory = self._token_directory()
        if not (directory / "refresh_token").is_file():
            return False
        auth = self._tiled_auth(directory)
        self._session.set_auth(auth)
        self._external_login_installed(auth)
        return True

    def _external_login_installed(self, auth: TiledAuth) -> None:  # pragma: no cover - Context overrides
        pass

    def _external_logout(self, auth: TiledAuth) -> None:
        """End an external session: the provider's logout link (with the id token) or Tiled's revoke."""
        from ..utils import handle_error

        links = (self.server_info.get("authentication") or {}).get("links") or {}
        try:
            if self.client_id and links.get("logout"):
                response = self.http_client.get(links["logout"], params={
                    "id_token_hint": auth.sync_get_token("id_token") or "", "client_id": self.client_id})
                if response.is_error:  # said without the URL's query: it holds the id token
                    raise RuntimeError(f"the identity provider's logout at {links['logout']} answered "
                                       f"{response.status_code}; the tokens here are forgotten")
            elif auth.sync_get_token("refresh_token"):
                handle_error(self.http_client.post(self._session.url("auth/session/revoke"), auth=None,
                                                   json={"refresh_token": auth.sync_get_token("refresh_token")}))
        finally:
            auth.clear()
            self._forget_login()
