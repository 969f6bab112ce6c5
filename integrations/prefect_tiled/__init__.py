"""Prefect 3 integration for Tiled (credentials block, tasks, flows): not built yet."""
