"""DaskResource: a distributed.Client for the run (an existing scheduler, or a LocalCluster)."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

__all__ = ["DaskResource"]


class DaskResource(ConfigurableResource):
    """Hands out a ``distributed.Client`` so assets compute on workers.

    With ``scheduler_address`` the run connects to that scheduler; without it,
    a ``LocalCluster`` (on 127.0.0.1) is started for the run and closed after it. The client
    becomes dask's default scheduler for the run, so lazily loaded Tiled data
    (``dask.array.Array`` inputs) is read block by block on the workers. Give
    the Tiled API key as ``TILED_API_KEY`` in the workers' environment: task
    graphs carry only the variable's name, never the key.
    """

    scheduler_address: str | None = Field(default=None, description="e.g. tcp://scheduler:8786; unset: a LocalCluster")
    n_workers: int = Field(default=2, description="LocalCluster workers")
    threads_per_worker: int = Field(default=1, description="LocalCluster threads per worker")
    processes: bool = Field(default=True, description="LocalCluster workers as processes (True) or threads")
    dashboard_address: str | None = Field(default=None, description="LocalCluster dashboard, e.g. ':8787'; unset: none")

    _client: Any = PrivateAttr(default=None)
    _cluster: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from distributed import Client, LocalCluster

        if self.scheduler_address:
            self._client = Client(self.scheduler_address, set_as_default=True)
            return
        self._cluster = LocalCluster(
            n_workers=self.n_workers, threads_per_worker=self.threads_per_worker, processes=self.processes,
            dashboard_address=self.dashboard_address,
            # Worker processes talk over loopback TCP; thread workers use in-process comms.
            **({"host": "127.0.0.1"} if self.processes else {}),
        )
        try:
            self._client = Client(self._cluster, set_as_default=True)
        except BaseException:
            self._cluster.close()
            raise

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    def get_client(self):
        """The run's ``distributed.Client``."""
        if self._client is None:
            raise RuntimeError("DaskResource is set up when a run starts; get_client() is for use inside a run")
        return self._client
