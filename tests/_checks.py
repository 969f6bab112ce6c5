"""Small assertions and helpers shared by the test modules."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def sends_no_request(client):
    """Assert that the block sends no request on ``client``'s connection (e.g. bad input caught locally)."""
    before = client.context.session.request_count
    yield
    assert client.context.session.request_count == before, "a request was sent"


def running(server):
    """``server`` (a LocalTiledServer), started again if an earlier test left it down."""
    if not server.is_running():
        server.restart()
    return server
