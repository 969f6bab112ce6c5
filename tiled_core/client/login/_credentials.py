"""Who is logged in, API keys, tokens and principals: what ``Context`` takes from :class:`CredentialRequests`.

``whoami``, ``tokens``, ``force_auth_refresh``, ``which_api_key``,
``create_api_key``, ``revoke_api_key`` and the ``admin`` view (principals and
their keys, as ``Admin``). Replies are the server's documents; a new key's
secret comes back in an ``APIKeyInfo`` and tokens in a ``TokensView``, whose
reprs mask them.
"""

from __future__ import annotations

import collections.abc
from typing import TYPE_CHECKING

from ...transport import TokenAuth
from ._secrets import APIKeyInfo, TokensView, parse_duration
from ._tiled_auth import TiledAuth

if TYPE_CHECKING:
    from ...transport import Session

__all__ = ["CredentialRequests", "Admin"]


class _DirectoryTokens:
    """A TiledAuth's tokens, as TokensView reads them."""

    def __init__(self, auth: TiledAuth) -> None:
        self.access_token = auth.sync_get_token("access_token") or ""
        self.refresh_token = auth.sync_get_token("refresh_token") or ""


class CredentialRequests:
    """Mixin of ``Context``: who is logged in, its tokens, and the API keys of this user or service.

    It uses the context's ``_session`` and ``_auth_links()`` (the server's
    authentication links).
    """

    _session: Session

    @property
    def admin(self) -> "Admin":
        """Requests that need administrative scopes (principals and their API keys)."""
        return Admin(self)

    def whoami(self) -> dict | None:
        """Return information about the currently-authenticated user or service (None if anonymous)."""
        return self._session.get_document("auth/whoami")

    @property
    def tokens(self) -> TokensView:
        """A view of the current access and refresh tokens (empty when not logged in); its repr masks them."""
        auth = self._session.auth
        if isinstance(auth, TiledAuth):
            return TokensView(_DirectoryTokens(auth) if auth.sync_get_token("refresh_token") else None)
        return TokensView(auth.tokens if isinstance(auth, TokenAuth) else None)

    def force_auth_refresh(self) -> TokensView:
        """Execute refresh flow now (it happens by itself ahead of expiry); returns the new tokens.

        Raises RuntimeError when not logged in, LoginRequired when the session
        can no longer be refreshed.
        """
        auth = self._session.auth
        if isinstance(auth, TiledAuth):  # an external provider's session: its refresh, through our client
            from ..utils import handle_error

            reply = self._session.http_client.send(auth.refresh_request(), auth=None)
            auth.refused(reply)
            auth.sync_tokens(handle_error(reply).json())
            return self.tokens
        return TokensView(self._session.refresh_login())

    def which_api_key(self) -> dict:
        """The server's description of the API key in use (no secret in it)."""
        if not self._session.has_api_key:
            raise RuntimeError("no API key is set for this context")
        return self._session.get_document("auth/apikey")

    def create_api_key(self, scopes=None, expires_in=None, note=None, access_tags=None) -> APIKeyInfo:
        """Generate a new API key for the current user or service.

        Arguments:
            scopes: restrict the key to these scopes (default: the user's).
            expires_in: seconds, or a string like ``"30s"``, ``"5m"``, ``"1h"``,
                ``"3d"``, ``"1y"``; None for the server's longest lifetime.
            note: a description, for humans.
            access_tags: restrict the key to these access tags.

        Returns the server's description, with the key itself under
        ``"secret"`` (shown once; the returned dict's repr masks it).
        """
        body = _api_key_request(scopes, expires_in, note, access_tags)
        if not self._auth_links().get("apikey"):
            raise RuntimeError(
                f"{self._session.base_url} is a single-user server: it has one static API key and cannot create more"
            )
        return APIKeyInfo(self._session.send("POST", "auth/apikey", json=body))

    def revoke_api_key(self, first_eight: str) -> None:
        """Revoke one of the current user's API keys, named by its first 8 characters."""
        if not isinstance(first_eight, str) or len(first_eight) < 8:
            raise ValueError("first_eight must be the API key's first 8 characters (its 'first_eight')")
        self._session.send("DELETE", "auth/apikey", params={"first_eight": first_eight[:8]})



class Admin:
    """Requests that need administrative scopes (``context.admin``); replies are the server's documents."""

    def __init__(self, context: CredentialRequests) -> None:
        self._session = context.session

    def list_principals(self, offset: int = 0, limit: int = 100) -> list:
        """Principals (users and services) in the authentication database, a page at a time."""
        return self._session.get_document("auth/principal", [("offset", int(offset)), ("limit", int(limit))])

    def show_principal(self, uuid: str) -> dict:
        """One principal (user or service), by its uuid."""
        return self._session.get_document(f"auth/principal/{_uuid(uuid)}")

    def create_service_principal(self, role: str) -> dict:
        """A new service principal with ``role`` (e.g. ``"user"`` or ``"admin"``)."""
        if not isinstance(role, str) or not role:
            raise ValueError("role must be a role name such as 'user' or 'admin'")
        return self._session.send("POST", "auth/principal", params={"role": role})

    def create_api_key(self, uuid: str, scopes=None, expires_in=None, note=None, access_tags=None) -> APIKeyInfo:
        """A new API key for another principal (arguments as ``Context.create_api_key``)."""
        body = _api_key_request(scopes, expires_in, note, access_tags)
        return APIKeyInfo(self._session.send("POST", f"auth/principal/{_uuid(uuid)}/apikey", json=body))

    def revoke_api_key(self, uuid: str, first_eight: str) -> None:
        """Revoke an API key of any principal, named by the principal's uuid and the key's first 8 characters."""
        if not isinstance(first_eight, str) or len(first_eight) < 8:
            raise ValueError("first_eight must be the API key's first 8 characters (its 'first_eight')")
        self._session.send("DELETE", f"auth/principal/{_uuid(uuid)}/apikey", params={"first_eight": first_eight[:8]})


def _uuid(uuid: str) -> str:
    if not isinstance(uuid, str) or not uuid or "/" in uuid:
        raise ValueError(f"a principal's uuid is a string like '7f3c...', not {uuid!r}")
    return uuid


def _api_key_request(scopes, expires_in, note, access_tags) -> dict:
    if scopes is not None and (isinstance(scopes, str) or not isinstance(scopes, collections.abc.Iterable)):
        raise TypeError("scopes must be a list of scope names, e.g. ['read:metadata', 'read:data']")
    return {
        "scopes": list(scopes) if scopes is not None else None,
        "access_tags": list(access_tags) if access_tags is not None else None,
        "expires_in": parse_duration(expires_in),
        "note": note,
    }
