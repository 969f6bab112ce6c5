"""``Transport``: an httpx transport that routes through the proxies the environment names.

httpx applies ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` only to
the transport it builds itself; a client handed a transport of its own skips
them. This one applies them itself, so a client built as
``httpx.Client(transport=Transport())`` still honours them.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["Transport"]


def _environment_mounts(trust_env: bool, **options: Any) -> dict:
    """``{URL pattern: proxy transport or None (connect directly)}``, most specific pattern first."""
    if not trust_env:
        return {}
    # httpx's own reading of the proxy variables (the rules it applies to the clients it builds).
    from httpx._utils import URLPattern, get_environment_proxies

    mounts = {URLPattern(pattern): (None if proxy is None else httpx.HTTPTransport(proxy=proxy, **options))
              for pattern, proxy in get_environment_proxies().items()}
    return dict(sorted(mounts.items(), key=lambda item: item[0].priority))


class Transport(httpx.BaseTransport):
    """An httpx transport honouring the environment's proxy variables.

    Arguments:
        transport: send everything through this transport instead (e.g. an
            in-process ASGI one); proxies do not apply then.
        cache: must be None: tiled_core's response cache belongs to the
            session (``from_uri(..., cache=Cache(...))``), not the transport.
        limits: the connection pool's ``httpx.Limits``.
        verify: TLS verification (bool, CA bundle path or ``ssl.SSLContext``).
        trust_env: read the proxy variables (default True).

    Attributes: ``transport`` (the direct one) and ``cache`` (None).
    """

    def __init__(self, *, transport: httpx.BaseTransport | None = None, cache: Any = None,
                 limits: httpx.Limits | None = None, verify: Any = True, trust_env: bool = True) -> None:
        if cache is not None:
            raise TypeError("tiled_core keeps its response cache in the session: pass cache= to from_uri or "
                            "Context, not to Transport")
        if transport is not None:
            self.transport = transport
            self._mounts: dict = {}
        else:
            options: dict[str, Any] = {"verify": verify}
            if limits is not None:
                options["limits"] = limits
            self.transport = httpx.HTTPTransport(**options)
            self._mounts = _environment_mounts(trust_env, **options)
        self.cache = None

    def _transport_for_url(self, url: httpx.URL) -> httpx.BaseTransport:
        """The proxy transport for ``url`` (the most specific matching pattern), else the direct one."""
        for pattern, transport in self._mounts.items():
            if pattern.matches(url):
                return transport if transport is not None else self.transport
        return self.transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport_for_url(request.url).handle_request(request)

    def close(self) -> None:
        self.transport.close()
        for transport in self._mounts.values():
            if transport is not None:
                transport.close()
