"""TiledResource: one tiled_core client per run, configured in Dagster."""

from __future__ import annotations

import os
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

__all__ = ["TiledResource"]

_KEY_VARIABLE = "TILED_API_KEY"
_CONTEXT_SETTINGS = ("api_key", "headers", "cache", "timeout", "verify", "max_connections", "trust_env")


class TiledResource(ConfigurableResource):
    """A connection to a Tiled server for Dagster assets, ops, sensors and checks.

    Give the API key as ``EnvVar("TILED_API_KEY")``: Dagster resolves it at run
    time and shows only the variable's name in the UI and run config. One
    client is opened per run (in ``setup_for_execution``) and closed when the
    run's resources are torn down. Nothing ever prompts for a login.

    Example::

        tiled = TiledResource(uri="http://tiled:8000/api/v1", api_key=EnvVar("TILED_API_KEY"),
                              base_path="dagster")
        Definitions(assets=[...], resources={"tiled": tiled, "io_manager": TiledIOManager(tiled=tiled)})
    """

    uri: str | None = Field(default=None, description="Server (or node) URI; leave unset when using a profile.")
    api_key: str | None = Field(
        default=None,
        description="API key; give it as EnvVar('TILED_API_KEY'). Unset: TILED_API_KEY from the environment.",
        repr=False,  # resolved in a run, it is the key itself
    )
    profile: str | None = Field(default=None, description="Name of a Tiled profile to connect with instead of uri.")
    base_path: str = Field(default="", description="Container under which assets are stored, e.g. 'dagster/prod'.")
    structure_clients: str = Field(default="numpy", description="'numpy' (in-memory reads) or 'dask' (lazy reads).")
    timeout: float | None = Field(default=None, description="Request timeout in seconds (default: tiled_core's).")

    _client: Any = PrivateAttr(default=None)

    # -- life cycle --------------------------------------------------------
    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._client = self._connect()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's connections (teardown does this for runs)."""
        client, self._client = self._client, None
        if client is not None:
            client.context.close()

    # -- public ------------------------------------------------------------
    def get_client(self):
        """The client on the server root (or the node ``uri`` names), opened once per run."""
        if self._client is None:  # used outside a run (scripts, notebooks): open on first use
            self._client = self._connect()
        return self._client

    @property
    def base_parts(self) -> tuple[str, ...]:
        """``base_path`` split into keys."""
        return tuple(part for part in self.base_path.split("/") if part)

    def node_path(self, *parts: str) -> str:
        """The path of ``parts`` under ``base_path`` (``"base/a/b"``)."""
        return "/".join((*self.base_parts, *parts))

    # -- internals -----------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """``uri`` and the connection settings: the profile's (if any), then this resource's."""
        settings: dict[str, Any] = {}
        if self.profile is not None:
            from tiled_core import profiles

            settings = profiles.profile_to_from_uri_kwargs(profiles.resolve_profile(self.profile))
        if self.uri is not None:
            settings["uri"] = self.uri
        if not settings.get("uri"):
            raise ValueError("TiledResource needs uri= or profile=")
        if self.timeout is not None:
            settings["timeout"] = self.timeout
        # A key equal to $TILED_API_KEY is left for the client to read from the environment
        # itself: then it knows the key's *source*, and lazy (dask) reads can run on
        # workers that find the key there, without the key travelling in task graphs.
        if self.api_key is not None and self.api_key != os.environ.get(_KEY_VARIABLE):
            settings["api_key"] = self.api_key
        return settings

    def _connect(self):
        from tiled_core.client import Context, from_context

        if self.structure_clients not in ("numpy", "dask"):
            raise ValueError(f"structure_clients must be 'numpy' or 'dask', not {self.structure_clients!r}")
        settings = self._settings()
        context, parts = Context.from_any_uri(
            settings["uri"], **{name: settings[name] for name in _CONTEXT_SETTINGS if name in settings}
        )
        try:
            if not context.authenticated:
                # Ask once ourselves: a server that wants a login refuses here, where the
                # client would otherwise offer a login prompt at a terminal.
                context.session.get_document("metadata/" + "/".join(parts), [("fields", ""), ("omit_links", "true")])
            # remember_me=False: a run never picks up tokens from someone's interactive login.
            return from_context(context, self.structure_clients, parts, remember_me=False)
        except BaseException:
            context.close()
            raise
