"""Dagster integration for Tiled (resource, IO manager, sensors): not built yet."""
