"""``Transport``: the httpx transport honouring proxy variables (the reference client's path).

See :class:`tiled_core.transport._mounted.Transport`.
"""

from ..transport._mounted import Transport

__all__ = ["Transport"]
