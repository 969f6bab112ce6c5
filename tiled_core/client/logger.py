"""Watching the client's traffic: ``show_logs``, ``hide_logs``, ``record_history``.

``show_logs()`` prints each request and response line (credentials redacted)
of the ``tiled_core.client`` logger to stderr; ``record_history()`` collects
the httpx requests and responses sent inside its block. Both see the exchanges
of every session, including requests scripted on ``Context.http_client``.
"""

from ..transport._history import History, hide_logs, logger, record_history, show_logs

__all__ = ["History", "hide_logs", "logger", "record_history", "show_logs"]
