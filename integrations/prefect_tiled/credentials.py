"""TiledCredentials: a Prefect credentials block that hands out tiled_core clients."""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Literal
from urllib.parse import urlsplit

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr, model_validator

__all__ = ["TiledCredentials"]

_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


class TiledCredentials(CredentialsBlock):
    """How to reach one Tiled server: its URI (or a tiled profile) and an optional API key.

    The API key is a ``SecretStr``: reprs, logs and the Prefect UI show it
    masked, and it is unwrapped only where the connection is opened.
    ``get_client()`` returns the root node client of the server (a
    ``tiled_core`` ``Container``); the connection pool behind it is opened
    once per process and per setting, then reused by every task.

    Example:
        ```python
        from prefect_tiled import TiledCredentials

        TiledCredentials(uri="https://tiled.example.org", api_key="...").save("facility")
        root = TiledCredentials.load("facility").get_client()
        ```
    """

    _block_type_name = "Tiled Credentials"
    _block_type_slug = "tiled-credentials"
    _description = "Connection settings and API key for a Tiled data server."
    _documentation_url = "https://blueskyproject.io/tiled/"  # type: ignore[assignment]

    uri: str | None = Field(
        default=None, description="Tiled server URI, e.g. https://tiled.example.org (or a node URI)."
    )
    api_key: SecretStr | None = Field(default=None, description="Tiled API key (stored encrypted, shown masked).")
    profile: str | None = Field(
        default=None, description="Name of a tiled profile to connect with instead of a URI."
    )
    structure_clients: Literal["numpy", "dask"] | None = Field(
        default=None, description="'numpy' (in-memory reads) or 'dask' (lazy reads); default numpy, or the profile's."
    )
    timeout: float | None = Field(
        default=None, gt=0, description="Seconds allowed per request phase (default: the client's, 30 s)."
    )
    verify: bool | str | None = Field(
        default=None, description="TLS verification: true/false or a CA bundle path (default: true, or the profile's)."
    )

    @model_validator(mode="after")
    def _one_target(self) -> "TiledCredentials":
        if (self.uri is None) == (self.profile is None):
            raise ValueError("give exactly one of uri= or profile=")
        if self.uri is not None and "api_key=" in urlsplit(self.uri).query:
            # The URI is shown in logs and the UI; only the api_key field is kept secret.
            raise ValueError("put the API key in api_key=, not in the URI")
        return self

    @property
    def target(self) -> str:
        """What these credentials connect to, for logs: the URI or ``profile:<name>`` (never the key)."""
        return self.uri if self.uri is not None else f"profile:{self.profile}"

    def _cache_key(self) -> tuple:
        secret = self.api_key.get_secret_value() if self.api_key is not None else ""
        # A digest, so the cache does not keep a second plain copy of the key.
        digest = hashlib.sha256(secret.encode()).hexdigest() if secret else None
        return (self.uri, self.profile, digest, self.structure_clients, self.timeout, self.verify)

    def _connect(self):
        from tiled_core.client import from_profile, from_uri

        overrides: dict[str, Any] = {}
        if self.api_key is not None:
            overrides["api_key"] = self.api_key.get_secret_value()
        if self.timeout is not None:
            overrides["timeout"] = self.timeout
        if self.verify is not None:
            overrides["verify"] = self.verify
        if self.profile is not None:
            return from_profile(self.profile, self.structure_clients, **overrides)
        return from_uri(self.uri, self.structure_clients or "numpy", **overrides)

    def get_client(self):
        """The root node client (tiled_core ``Container``), shared within this process.

        Do not close its context: other tasks in the process reuse the
        connection pool. Raises what ``tiled_core.client.from_uri`` raises
        (``AuthenticationError`` for a rejected key, ``ConnectionFailed`` ...).
        """
        key = self._cache_key()
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = self._connect()
        return client

    def node(self, path: str = ""):
        """The client for the node at ``path`` ("" is the root); KeyError if there is none."""
        root = self.get_client()
        return root[path] if path.strip("/") else root

    @classmethod
    def close_clients(cls) -> None:
        """Close every connection pool opened by ``get_client`` in this process."""
        with _CLIENTS_LOCK:
            clients = list(_CLIENTS.values())
            _CLIENTS.clear()
        for client in clients:
            client.context.close()
