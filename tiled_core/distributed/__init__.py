"""What crosses a process boundary: picklable references to sessions and nodes, and worker-side tasks.

``share_credentials``, ``use_credential_source`` and ``WorkerCredential`` need
the ``distributed`` package and are imported on first use.
"""

from ._handles import CredentialSource, EnvVarCredential, SessionHandle, TokenFileCredential
from ._limits import set_worker_concurrency, worker_concurrency

__all__ = [
    "CredentialSource", "EnvVarCredential", "SessionHandle", "TokenFileCredential", "WorkerCredential",
    "set_worker_concurrency", "share_credentials", "use_credential_source", "worker_concurrency",
]

_LAZY = {"WorkerCredential", "share_credentials", "use_credential_source"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import _credentials

        return getattr(_credentials, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
