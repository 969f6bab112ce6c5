"""Logging in with a username and password: prompts (terminal only) and the password grant.

Prompts happen only when standard input is a terminal (or ``TILED_FORCE_PROMPT=1``);
anywhere else a missing username or password is a ``CannotPrompt`` error at
once, so a pipeline never hangs waiting for input. A caller may hand in its own
``ask_username``/``ask_password`` callables instead (the replaceable
``tiled_core.client.context.username_input``/``password_input`` hooks); those
are called whether or not there is a terminal.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ...transport import AuthenticationError, Session

__all__ = ["CannotPrompt", "can_prompt", "password_login", "terminal_username", "terminal_password"]

PASSWORD_ATTEMPTS = 3


class CannotPrompt(RuntimeError):
    """Credentials are needed but this process has no terminal to ask for them."""


def can_prompt() -> bool:
    """True when the user can be asked at a terminal (stdin is a TTY, or ``TILED_FORCE_PROMPT=1``)."""
    if os.environ.get("TILED_FORCE_PROMPT", "").strip() in ("1", "true", "yes"):
        return True
    stdin = sys.stdin
    try:
        return stdin is not None and not stdin.closed and stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _cannot_prompt(server: str, what: str) -> CannotPrompt:
    return CannotPrompt(
        f"logging in to {server} needs a {what}, and this process has no terminal to ask for it. "
        "Pass username= and password= to login(), use an API key (api_key= or TILED_API_KEY), "
        "or set TILED_FORCE_PROMPT=1 if a prompt can in fact be answered."
    )


def terminal_username(server: str = "the server") -> str:
    """Ask for a username at the terminal; CannotPrompt without one."""
    if not can_prompt():
        raise _cannot_prompt(server, "username")
    return input("Username: ").strip()


def terminal_password(server: str = "the server", username: str | None = None) -> str:
    """Ask for a password at the terminal without echo; CannotPrompt without one."""
    if not can_prompt():
        raise _cannot_prompt(server, "password")
    return getpass.getpass(f"Password for {username} at {server}: " if username else "Password: ")


def choose_provider(providers: list[Mapping], name: str | None, server: str) -> Mapping:
    """The provider to log in with: the one named, the only one, or one picked at the terminal."""
    if not providers:
        raise RuntimeError(
            f"{server} offers no login (it has no authentication providers): use an API key instead"
        )
    if name is not None:
        for spec in providers:
            if spec.get("provider") == name:
                return spec
        raise ValueError(f"{server} has no provider {name!r}; it offers {[p.get('provider') for p in providers]}")
    if len(providers) == 1:
        return providers[0]
    names = [p.get("provider") for p in providers]
    if not can_prompt():
        raise CannotPrompt(f"{server} offers several login providers {names}: pass provider=")
    for i, provider_name in enumerate(names, start=1):
        print(f"{i} - {provider_name}")
    choice = input("Choose an authentication provider: ").strip()
    if not choice.isdigit() or not 1 <= int(choice) <= len(names):
        raise ValueError(f"no provider number {choice!r}; choose 1 to {len(names)}")
    return providers[int(choice) - 1]


def _token_path(spec: Mapping) -> str:
    link = (spec.get("links") or {}).get("auth_endpoint")
    return link or f"auth/provider/{spec.get('provider')}/token"


def password_login(
    session: Session,
    spec: Mapping,
    *,
    username: str | None,
    password: str | None,
    server: str,
    ask_username: Callable[[], str] | None = None,
    ask_password: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """The server's token reply for a username/password login with provider ``spec``.

    Asks for what is not given: with ``ask_username``/``ask_password`` when
    given (called with no arguments), else at the terminal (the password
    without echo); up to three password tries. Raises CannotPrompt when it
    must ask and there is neither a terminal nor a callable, and
    AuthenticationError when the server refuses the credentials given.
    """
    mode = spec.get("mode")
    if mode not in ("internal", "password"):
        raise RuntimeError(
            f"{server} logs in through an external identity provider (mode {mode!r}) in a web browser, "
            "which tiled_core does not support; create an API key there and pass api_key="
        )
    interactive = password is None
    if username is None:
        username = ask_username().strip() if ask_username is not None else terminal_username(server)
    if not username:
        raise ValueError("the username is empty")
    attempts = PASSWORD_ATTEMPTS if interactive else 1
    for attempt in range(1, attempts + 1):
        if interactive:
            password = ask_password() if ask_password is not None else terminal_password(server, username)
            if not password:
                raise ValueError("the password is empty")
        try:
            return session.send(
                "POST", _token_path(spec), form={"username": username, "password": password},
                authenticate=False,
            )
        except AuthenticationError as error:
            refused = AuthenticationError(
                401, f"{server} did not accept the username or password for {username!r}",
                url=error.url, request_id=error.request_id,
            )
            if attempt == attempts:
                raise refused from None
            print("Username or password not recognized; try again.", file=sys.stderr)
        finally:
            password = None if interactive else password
