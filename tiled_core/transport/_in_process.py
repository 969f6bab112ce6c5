"""``OneAtATime``: an httpx transport wrapper that lets one request at a time into an in-process app.

``Context.from_app`` talks to an ASGI app through Starlette's test client:
every request runs on the app's one event loop in this process. A Tiled app
over an in-memory SQLite catalog (``tiled.catalog.in_memory``, what tests
build) keeps *one* database connection for all requests (SQLAlchemy's
``StaticPool``), so two requests in flight interleave their transactions on
it: one request's commit or rollback ends the other's, which then fails with
``FOREIGN KEY constraint failed`` or ``Could not refresh instance``. A real
server process has a connection pool and takes concurrent requests; an
in-process app does not. So in-process requests are sent one after another
(each answered whole, body included, before the next starts), whatever
concurrency the layers above ask for. Remote servers are not affected.
"""

from __future__ import annotations

import threading

import httpx

__all__ = ["OneAtATime"]


class OneAtATime(httpx.BaseTransport):
    """Wrap ``transport`` so that requests through it never overlap (the reply is read whole first)."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport
        self._lock = threading.Lock()

    def __getattr__(self, name):
        # The test client's transport carries the app and its state; keep them reachable.
        return getattr(self._transport, name)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            response = self._transport.handle_request(request)
            try:
                body = b"".join(response.stream)  # the app runs until its body is complete
            finally:
                response.close()
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(body),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._transport.close()
