"""Context: one connection to one Tiled server (session, server info, credentials source)."""

from __future__ import annotations

import os
import time  # noqa: F401  (the device-code flow polls with time.sleep; scripts patch it here)
from typing import Any

import httpx

from ..distributed._handles import ANONYMOUS, EnvVarCredential, SessionHandle, TokenFileCredential
from ..transport import (
    ApiKeyAuth,
    AuthenticationError,
    Cache,
    Conflict,
    FileTokenStore,
    Limits,
    MemoryTokenStore,
    Session,
    TokenAuth,
    Tokens,
    Timeouts,
    token_file_for,
)
from ._about import About
from ._pickling import reduce_context
from ._progress_state import ContextProgress, show_progress_default
from ._uris import API_PREFIX, parse_node_uri as _parse_node_uri, split_api_key as _split_api_key
from .cache import coerce_cache
from .login._credentials import Admin, CredentialRequests
from .login._device import PasswordRejected, device_code_grant, password_grant, prompt_for_credentials
from .login._external import ExternalLogins
from .login._password import CannotPrompt, can_prompt, choose_provider, password_login, terminal_password, terminal_username
from .login._tiled_auth import TiledAuth

__all__ = ["Context", "Admin", "UNSET", "CannotPrompt", "username_input", "password_input", "PasswordRejected",
           "device_code_grant", "password_grant", "prompt_for_credentials"]


# -- the prompt hooks ----------------------------------------------------------
# Module attributes, looked up at each login: a script (or a test) may replace
# them with its own callables, as with the reference client. A replaced hook is
# called whether or not there is a terminal; the defaults refuse to wait for
# input that cannot come (CannotPrompt).

def username_input() -> str:
    """Ask for a username at the terminal (CannotPrompt without a terminal).

    Replace ``tiled_core.client.context.username_input`` with a callable taking
    no arguments to supply the username another way.
    """
    return terminal_username()


def password_input() -> str:
    """Ask for a password at the terminal, without echo (CannotPrompt without a terminal).

    Replace ``tiled_core.client.context.password_input`` with a callable taking
    no arguments to supply the password another way.
    """
    return terminal_password()


_DEFAULT_USERNAME_INPUT = username_input
_DEFAULT_PASSWORD_INPUT = password_input


def _replaced_hooks():
    """The prompt hooks a script has put in place of the defaults (None where it has not)."""
    return (username_input if username_input is not _DEFAULT_USERNAME_INPUT else None,
            password_input if password_input is not _DEFAULT_PASSWORD_INPUT else None)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


class Context(CredentialRequests, ContextProgress, ExternalLogins):
    """A connection to one Tiled server.

    Arguments (as the reference client's):
        uri: the API base (``http://host:port/api/v1``) or the server root.
        headers: extra headers for every request.
        api_key: the API key; default ``TILED_API_KEY`` from the environment.
        cache: a response ``Cache`` (or a mapping of its arguments); default none.
        timeout: seconds (one number), a mapping of phases, or ``Timeouts``.
        verify: TLS verification.
        max_connections: size of the connection pool, and how many data
            fetches (chunks, partitions) Dask tasks send at once.
        show_progress: allow progress bars in interactive sessions (default
            ``TILED_SHOW_PROGRESS``, on); see ``tracking_progress``.
        trust_env: honour proxy variables.

    Constructing it sends no request; the server's about document is fetched
    on first use of ``server_info``.
    """

    def __init__(
        self,
        uri: str,
        *,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
        cache: Any = UNSET,
        timeout: Any = None,
        verify: Any = True,
        app: Any = None,
        raise_server_exceptions: bool = True,
        max_connections: int = 16,
        show_progress: Any = None,
        trust_env: bool = True,
        _http_client: Any = None,
    ) -> None:
        cache = coerce_cache(cache, UNSET)
        if app is not None:
            raise TypeError("use Context.from_app(app) to talk to an in-process server")
        uri, key_in_uri = _split_api_key(uri)
        base, _ = _parse_node_uri(uri)
        if api_key is None:
            api_key = key_in_uri
        source = ANONYMOUS
        if api_key is None and os.environ.get("TILED_API_KEY"):
            api_key = os.environ["TILED_API_KEY"]
            source = EnvVarCredential("TILED_API_KEY")
        elif api_key is not None:
            source = None  # given directly: never shipped to other processes
        headers = dict(headers or {})
        if any(k.lower() == "authorization" for k in headers):
            source = None  # a header credential is not shippable either
        limits = Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._session = Session(
            base,
            api_key=api_key,
            headers=headers,
            timeouts=Timeouts.coerce(timeout),
            limits=limits,
            verify=verify,
            trust_env=trust_env,
            http_client=_http_client,
            cache=cache,
        )
        self._handle = SessionHandle(self._session, source)
        self._server_info: About | None = None
        self._closers: list = []
        self.show_progress = show_progress_default(show_progress)
        # The transport's own retries show the retry indicator in interactive sessions only:
        # scripts and pipelines stay quiet (their retries are logged at debug level).
        from . import utils

        if utils.is_interactive():
            self._session.fetch_gate.watch_retries(self)
        self.app = None  # the ASGI app, for from_app contexts
        self._in_process = _http_client is not None and hasattr(_http_client, "app")
        # For pickles (see _pickling): what was given, and the handle naming the live credential.
        self._custom_client = _http_client is not None
        self._headers, self._verify, self._trust_env = headers, verify, trust_env
        self._held = None

    # -- constructors ------------------------------------------------------
    @classmethod
    def from_any_uri(cls, uri: str, **kwargs) -> tuple["Context", list[str]]:
        """Accept a URI to any node; return ``(context, node_path_parts)``."""
        uri, key_in_uri = _split_api_key(uri)
        base, node = _parse_node_uri(uri)
        if key_in_uri and kwargs.get("api_key") is None:
            kwargs["api_key"] = key_in_uri
        return cls(base, **kwargs), node

    @classmethod
    def from_app(
        cls,
        app: Any,
        *,
        cache: Any = UNSET,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        api_key: Any = UNSET,
        raise_server_exceptions: bool = True,
        uri: str | None = None,
        max_connections: int = 16,
        show_progress: Any = None,
    ) -> "Context":
        """Talk to an ASGI app in this process (its lifespan runs until ``close()``).

        With ``api_key`` unset, a single-user app's own key is used (one request
        for the server's about document tells single- from multi-user apps).
        """
        from starlette.testclient import TestClient  # only for in-process apps

        from ..transport._in_process import OneAtATime

        guess_key = api_key is UNSET
        api_key = None if guess_key else api_key
        base = uri or "http://local-tiled-app"
        client = TestClient(app, base_url=base, raise_server_exceptions=raise_server_exceptions)
        # One request at a time: the app's in-memory catalog cannot take concurrent ones (see OneAtATime).
        client._transport = OneAtATime(client._transport)
        client.__enter__()  # runs the lifespan: the catalog needs its startup
        context = cls(
            base.rstrip("/") + API_PREFIX if API_PREFIX not in base else base,
            headers=headers,
            api_key=api_key,
            cache=cache,
            timeout=timeout,
            max_connections=max_connections,
            show_progress=show_progress,
            _http_client=client,
        )
        context.app = app
        context._closers.append(lambda: client.__exit__(None, None, None))
        if guess_key:
            # A single-user app (no login providers): use its own key. A multi-user one: no key.
            providers = (context.server_info.get("authentication") or {}).get("providers")
            context.api_key = None if providers else _app_api_key(app)
        return context

    # -- properties ----------------------------------------------------------
    @property
    def session(self) -> Session:
        """The transport session (HTTP, retries, pool)."""
        return self._session

    @property
    def session_handle(self) -> SessionHandle:
        """A picklable reference to the session, for Dask graphs."""
        return self._handle

    @property
    def api_uri(self) -> str:
        """The API base, ending with ``/``."""
        return self._session.base_url + "/"

    @property
    def http_client(self) -> "httpx.Client":
        """The httpx client this context talks through, for scripting raw requests.

        It carries this context's credential (refreshed as needed; change it with
        ``api_key``, ``login`` or ``logout``), headers and connection pool, and
        its exchanges are seen by ``record_history()`` and ``show_logs()``. For
        ``from_app`` it is the in-process test client, whose base URL is the
        app's root (``http_client.get("/api/v1/")``); otherwise pass absolute
        URLs (``context.api_uri`` + path). Its requests are not retried: wrap
        them in ``tiled_core.client.utils.retry_context`` and ``handle_error``.
        """
        return self._session.http_client

    @http_client.setter
    def http_client(self, client: "httpx.Client") -> None:
        self._session.use_http_client(client)

    @property
    def api_key(self) -> str | None:
        """The API key in use (None without one). Set it to switch keys; set None to drop it."""
        return self._session.reveal_api_key()

    @api_key.setter
    def api_key(self, api_key: str | None) -> None:
        if api_key is None:
            if self._session.has_api_key:
                self._session.set_auth(None)
                self._handle = SessionHandle(self._session, ANONYMOUS)
            return
        self._session.set_auth(ApiKeyAuth(api_key))  # checks the key's form before any request
        self._handle = SessionHandle(self._session, None)  # given directly: never shipped to other processes

    @property
    def max_connections(self) -> int:
        """The size of the connection pool (``max_connections`` as given)."""
        return self._session.limits.max_connections

    @property
    def cache(self) -> Cache | None:
        """The response cache, or None."""
        return self._session.cache

    @cache.setter
    def cache(self, cache: Cache | None) -> None:
        self._session.cache = coerce_cache(cache, UNSET)

    @property
    def server_info(self) -> About:
        """The server's about document (formats, queries, authentication), fetched once.

        A dict whose keys are also attributes (``server_info.authentication.providers``).
        """
        if self._server_info is None:
            self._server_info = About(self._session.get_document(""))
        return self._server_info

    def __repr__(self) -> str:
        auth = self._session.auth
        who = ""
        if isinstance(auth, TokenAuth):
            name = auth.tokens.username if auth.tokens is not None else None
            who = f" (authenticated as '{name}')" if name else " (logged in)"
        elif self._session.has_credentials:
            who = " (authenticated)"
        else:
            who = " (unauthenticated)"
        return f"<Context {self.api_uri}{who}>"

    # -- login sessions --------------------------------------------------------
    @property
    def authenticated(self) -> bool:
        """True with an API key, a login session, custom auth or an Authorization header."""
        return self._session.has_credentials

    def _auth_links(self) -> dict:
        return (self.server_info.get("authentication") or {}).get("links") or {}

    def _token_file(self) -> FileTokenStore:
        return FileTokenStore(token_file_for(self.api_uri))

    def _install_tokens(self, store) -> None:
        # The server's own link if its about document is at hand; no request just for it.
        links = ((self._server_info or {}).get("authentication") or {}).get("links") or {}
        refresh = self._session.token_refresher(links.get("refresh_session") or "auth/session/refresh")
        self._session.set_auth(TokenAuth(store, refresh, server=self._session.base_url))
        source = TokenFileCredential(str(store.path)) if isinstance(store, FileTokenStore) else None
        self._handle = SessionHandle(self._session, source)

    def use_cached_tokens(self) -> bool:
        """Log in with the tokens an earlier login saved for this server, if there are any.

        Returns whether it did (no request is sent; a stale session shows on
        the next request, as LoginRequired).
        """
        return self._use_cached_tokens()

    def _use_cached_tokens(self) -> bool:
        """Use tokens a previous login saved for this server, if any (no request is sent)."""
        store = self._token_file()
        if self.authenticated:
            return False
        if store.load() is None:
            return self._use_token_directory()  # an external provider's session (TiledAuth)
        self._install_tokens(store)
        return True

    def authenticate(
        self,
        *,
        remember_me: bool = True,
        username: str | None = None,
        password: str | None = None,
        provider: str | None = None,
    ) -> None:
        """Log in to a Tiled server with a username and password.

        What is not given is asked for at the terminal (the password without
        echo); without a terminal that is a ``CannotPrompt`` error, never a
        wait. Replaced ``username_input``/``password_input`` hooks of this
        module are asked instead, terminal or not. With ``remember_me`` the tokens are kept (mode 0600) in the
        user's cache directory, shared by this user's processes, so later
        connections log in by themselves; otherwise only in memory.

        Raises AuthenticationError for a wrong username or password, and
        RuntimeError when an API key is set or the server has no login.
        """
        if self._session.has_api_key:
            raise RuntimeError("An API key is set. Cannot use both an API key and a login session.")
        authentication = self.server_info.get("authentication") or {}
        spec = choose_provider(list(authentication.get("providers") or []), provider, self._session.base_url)
        if spec.get("mode") == "external":  # a browser login (device-code flow), kept as a TiledAuth
            if not can_prompt():
                raise CannotPrompt(f"logging in to {self._session.base_url} needs a web browser login and this "
                                   "process has no terminal: use an API key, or set TILED_FORCE_PROMPT=1")
            return self.configure_auth(prompt_for_credentials(self.http_client, [spec]), remember_me=remember_me)
        ask_username, ask_password = _replaced_hooks()
        reply = password_login(self._session, spec, username=username, password=password,
                               server=self._session.base_url, ask_username=ask_username, ask_password=ask_password)
        tokens = Tokens.from_response(reply)
        file_store = self._token_file()
        if remember_me:
            store = file_store
        else:
            with file_store.locked():
                file_store.clear()  # do not leave an older session's tokens behind
            store = MemoryTokenStore()
        with store.locked():
            store.save(tokens)
        self._install_tokens(store)
        message = spec.get("confirmation_message")
        if message:
            print(message.format(id=tokens.username or username))

    # The reference client offers both names.
    login = authenticate

    def logout(self) -> None:
        """Log out of the current session (if any): revoke it on the server and forget its tokens.

        Idempotent. The tokens are forgotten here and in the token file even
        when the server cannot be told.
        """
        auth = self._session.auth
        if isinstance(auth, TiledAuth):
            return self._external_logout(auth)
        if not isinstance(auth, TokenAuth):
            return
        tokens = auth.tokens or auth.store.load()
        try:
            if tokens is not None:
                self._session.send("POST", "auth/session/revoke", json={"refresh_token": tokens.refresh_token},
                                   authenticate=False)
        except (Conflict, AuthenticationError):
            pass  # already revoked or expired
        finally:
            auth.forget()
            self._forget_login()

    def _external_login_installed(self, auth) -> None:
        self._handle = SessionHandle(self._session, None)  # its tokens stay on this machine

    def _forget_login(self) -> None:
        """Stop using the login session here (its tokens stay wherever they are)."""
        self._session.set_auth(None)
        self._handle = SessionHandle(self._session, ANONYMOUS)

    def __reduce__(self):
        # The credential stays in this process, behind a random token: see tiled_core.client._pickling.
        return reduce_context(self)

    def close(self) -> None:
        """Close the connections; later requests raise ClientClosed.

        For ``from_app`` this ends the app's lifespan (its shutdown runs) and,
        as with the reference client, the in-process client stays usable:
        later requests are still served by the app, each on its own.
        """
        for closer in self._closers:
            closer()
        self._closers.clear()
        if not self._in_process:
            self._session.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _app_api_key(app: Any) -> str | None:
    """The single-user key an in-process Tiled app was built with, if any (no tiled import)."""
    for dependency, override in getattr(app, "dependency_overrides", {}).items():
        if getattr(dependency, "__name__", "") == "get_settings":
            return getattr(override(), "single_user_api_key", None) or None
    return None
