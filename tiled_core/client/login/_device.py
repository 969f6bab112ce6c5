"""Getting tokens on a raw httpx client: the password grant and the OAuth2 device-code grant.

For applications that wrap Tiled and obtain tokens themselves (as with the
reference client's ``tiled.client.context`` functions of the same names):

- ``password_grant(http_client, auth_endpoint, provider, username, password)``
- ``device_code_grant(http_client, auth_endpoint, client_id, token_endpoint, scopes)``:
  prints a URL and a code for the user, opens a browser if it can, and polls
  until the login is confirmed, refused, or the code expires.
- ``prompt_for_credentials(http_client, providers)``: whichever of the two the
  server's provider asks for (choosing the provider at the terminal when
  there are several).

Each returns the token reply (a dict). They take a plain ``httpx.Client`` and
are independent of any Context.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ._password import CannotPrompt, can_prompt

__all__ = ["PasswordRejected", "device_code_grant", "password_grant", "prompt_for_credentials"]

PASSWORD_ATTEMPTS = 3
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_VERIFICATION_KEYS = ("verification_uri_complete", "verification_uri", "verification_url")  # the last: Entra's


class PasswordRejected(RuntimeError):
    """No password was given, or the server refused every one tried."""


def _field(spec: Any, name: str, default: Any = None) -> Any:
    """``spec.name`` or ``spec[name]``: providers may be dicts or attribute objects."""
    if isinstance(spec, Mapping):
        return spec.get(name, default)
    return getattr(spec, name, default)


def password_grant(http_client: httpx.Client, auth_endpoint: str, provider: str, username: str,
                   password: str) -> dict:
    """Tokens for ``username``/``password`` from ``auth_endpoint`` (an OAuth2 password form); retried
    on transient failures; raises the status error for a refusal (401)."""
    from ..utils import handle_error, retry_context

    form = {"grant_type": "password", "username": username, "password": password}
    for attempt in retry_context():
        with attempt:
            response = handle_error(http_client.post(auth_endpoint, data=form, auth=None))
    return response.json()


def _start(http_client: httpx.Client, auth_endpoint: str, client_id: str | None, token_endpoint: str | None,
           scopes: str) -> tuple[dict, str, str]:
    """``(verification reply, URL for the user, URL to poll)``."""
    from ..utils import handle_error, retry_context

    for attempt in retry_context():
        with attempt:
            if client_id and token_endpoint:  # the provider itself runs the device flow
                reply = handle_error(http_client.post(auth_endpoint, data={"client_id": client_id, "scope": scopes}))
            else:  # Tiled runs it, in front of a provider that has none (ORCID, Globus, ...)
                reply = handle_error(http_client.post(auth_endpoint))
    verification = reply.json()
    if client_id and token_endpoint:
        url = next((verification[k] for k in _VERIFICATION_KEYS if verification.get(k)), None)
        if url is None:
            raise KeyError(f"the device authorization reply from {auth_endpoint} has none of {list(_VERIFICATION_KEYS)}; "
                           f"it has {sorted(verification)}")
        return verification, url, token_endpoint
    return verification, verification["authorization_uri"], verification["verification_uri"]


def _poll_once(http_client: httpx.Client, poll_url: str, verification: dict, client_id: str | None,
               oauth2: bool) -> httpx.Response:
    """One poll of the token endpoint; connection failures and timeouts are tried again (not a refusal)."""
    for attempt in range(1, 101):
        try:
            if oauth2:
                return http_client.post(poll_url, data={"device_code": verification["device_code"],
                                                        "grant_type": DEVICE_CODE_GRANT, "client_id": client_id})
            return http_client.post(poll_url, json={"device_code": verification["device_code"],
                                                    "grant_type": DEVICE_CODE_GRANT}, auth=None)
        except (httpx.ConnectError, httpx.TimeoutException):
            if attempt == 100:
                raise
            time.sleep(min(0.1 * 2 ** attempt, 5.0))
    raise AssertionError("unreachable")


def device_code_grant(http_client: httpx.Client, auth_endpoint: str, client_id: str | None = None,
                      token_endpoint: str | None = None, scopes: str = "openid offline_access") -> dict:
    """Log in through a browser with the OAuth2 device-code flow; returns the token reply.

    With ``client_id`` and ``token_endpoint`` the identity provider runs the
    flow (``auth_endpoint`` is its device authorization endpoint); without
    them Tiled's own ``auth_endpoint`` runs it for the provider. Prints the
    URL to visit and the code to enter, tries to open a browser, then polls
    every ``interval`` seconds the server gives, printing a dot while the login
    is pending. Raises TimeoutError when the code expires first, and the
    status error when the login is refused.
    """
    from ..utils import handle_error

    oauth2 = bool(client_id and token_endpoint)
    verification, url, poll_url = _start(http_client, auth_endpoint, client_id, token_endpoint, scopes)
    print(f"\nYou have {int(verification['expires_in']) // 60} minutes to visit this URL\n\n{url}\n\n"
          f"and enter the code:\n\n{verification['user_code']}\n\n", end="")
    import webbrowser

    webbrowser.open(url)
    deadline = time.monotonic() + float(verification["expires_in"])
    print("Waiting...", end="", flush=True)
    while True:
        time.sleep(float(verification.get("interval", 5)))
        if time.monotonic() > deadline:
            raise TimeoutError(f"the device code expired before the login at {url} was confirmed")
        response = _poll_once(http_client, poll_url, verification, client_id, oauth2)
        if response.status_code == httpx.codes.BAD_REQUEST:
            body = response.json()
            error = body.get("error") if oauth2 else (body.get("detail") or {}).get("error")
            if error == "authorization_pending":
                print(".", end="", flush=True)
                continue
            response.raise_for_status()
        handle_error(response)
        print("\n")
        return response.json()


def _choose(providers: Sequence[Any]) -> Any:
    if len(providers) == 1:
        return providers[0]
    if not providers:
        raise RuntimeError("the server offers no login (no authentication providers): use an API key")
    if not can_prompt():
        raise CannotPrompt("the server offers several login providers and there is no terminal to choose one")
    for i, spec in enumerate(providers, start=1):
        print(f"{i} - {_field(spec, 'provider')}")
    choice = input("Choose an authentication provider: ").strip()
    if not choice.isdigit() or not 1 <= int(choice) <= len(providers):
        raise ValueError(f"no provider number {choice!r}; choose 1 to {len(providers)}")
    return providers[int(choice) - 1]


def prompt_for_credentials(http_client: httpx.Client, providers: Sequence[Any]) -> dict:
    """Tokens from the user: a username and password (``internal`` providers) asked through
    ``tiled_core.client.context.username_input``/``password_input``, or a browser login
    (``external`` providers, see ``device_code_grant``). Prints the provider's confirmation message."""
    from .. import context as hooks  # looked up now: a script may have replaced the prompt hooks

    spec = _choose(list(providers))
    links = _field(spec, "links") or {}
    auth_endpoint, client_id, token_endpoint = (links.get(k) for k in ("auth_endpoint", "client_id", "token_endpoint"))
    oauth2 = bool(client_id and token_endpoint)
    mode = _field(spec, "mode")
    if mode in ("internal", "password"):  # "password": older servers' name
        username = hooks.username_input()
        for _ in range(PASSWORD_ATTEMPTS):
            password = hooks.password_input()
            if not password:
                raise PasswordRejected("the password is empty")
            try:
                tokens = password_grant(http_client, auth_endpoint, _field(spec, "provider"), username, password)
                break
            except httpx.HTTPStatusError as error:
                if error.response.status_code != httpx.codes.UNAUTHORIZED:
                    raise
                print("Username or password not recognized. Retry, or press Enter to cancel.")
        else:
            raise PasswordRejected(f"{PASSWORD_ATTEMPTS} passwords were refused")
    elif mode == "external":
        scopes = " ".join(sorted({"openid", "offline_access", *(_field(spec, "extra_scopes") or [])}))
        tokens = device_code_grant(http_client, auth_endpoint, client_id, token_endpoint, scopes)
    else:
        raise ValueError(f"the server's provider {_field(spec, 'provider')!r} has an unknown mode {mode!r}")
    message = _field(spec, "confirmation_message")
    if message:
        print(message.format(id="external user" if oauth2 else tokens["identity"]["id"]))
    return tokens
