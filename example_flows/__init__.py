"""Runnable pipelines that use tiled_core; ``python -m example_flows`` is the main job."""
