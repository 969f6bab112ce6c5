"""Login sessions under the reference client's path (``tiled.client.auth``).

- ``CannotRefreshAuthentication``: the login session can no longer be refreshed
  (expired, revoked, or logged out); log in again. It is
  :class:`tiled_core.transport.LoginRequired`, itself an ``AuthenticationError`` (401).
- ``TiledAuth``: an ``httpx.Auth`` over a session kept as token files in a
  directory (the reference's layout; used for logins through an external
  identity provider), and ``build_refresh_request``.
"""

from ..transport import LoginRequired as CannotRefreshAuthentication
from .login._tiled_auth import TiledAuth, build_refresh_request

__all__ = ["CannotRefreshAuthentication", "TiledAuth", "build_refresh_request"]
