__version__ = "0.1.0"


def user_agent() -> str:
    # Our own product token: the server rewrites payloads for `python-tiled/<old>`.
    return f"tiled-core/{__version__}"
