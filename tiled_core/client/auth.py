"""Login-session errors under the reference client's path (``tiled.client.auth``).

``CannotRefreshAuthentication``: the login session can no longer be refreshed
(expired, revoked, or logged out); log in again. It is
:class:`tiled_core.transport.LoginRequired`, itself an ``AuthenticationError`` (401).
"""

from ..transport import LoginRequired as CannotRefreshAuthentication

__all__ = ["CannotRefreshAuthentication"]
