"""Login tokens and where they are kept: in memory, or in a per-server file shared by processes.

A token file holds one JSON object (access token, refresh token, expiry,
principal). It is created with mode 0600 in a 0700 directory and only ever
replaced whole (write a temporary file, then ``os.replace``), under an
exclusive lock on a sibling ``.lock`` file, so several processes refreshing at
once never lose or corrupt it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import platformdirs

__all__ = ["Tokens", "TokenStore", "MemoryTokenStore", "FileTokenStore", "cache_directory", "token_file_for"]


def cache_directory() -> Path:
    """Where tiled_core keeps caches: ``$TILED_CACHE_DIR`` or the user's cache directory."""
    return Path(os.environ.get("TILED_CACHE_DIR") or platformdirs.user_cache_dir("tiled-core"))


def private_directory(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (``mkdir(parents=True)`` gives parents 0755).

    Directories that exist already are left as they are: their mode is the user's choice.
    """
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)


def token_file_for(api_uri: str, directory: str | os.PathLike | None = None) -> Path:
    """The token file for one server (its API URI, quoted into a file name)."""
    base = Path(directory) if directory is not None else cache_directory() / "tiled_core_tokens"
    return base / (quote(api_uri.rstrip("/"), safe="") + ".json")


def _mask(value: str) -> str:
    return "***" if value else "''"


@dataclasses.dataclass(frozen=True)
class Tokens:
    """One login session's tokens. ``repr`` never shows them.

    ``expires_at`` is when the access token expires (epoch seconds, by this
    machine's clock); ``lifetime`` its full lifetime, used to refresh a little
    ahead of expiry. ``principal`` identifies the user (keys the response cache).
    """

    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    expires_at: float
    lifetime: float
    principal: str | None = None
    username: str | None = None

    @classmethod
    def from_response(cls, reply: Mapping, previous: "Tokens | None" = None) -> "Tokens":
        """Build from the server's token reply (login or refresh)."""
        try:
            access, refresh = reply["access_token"], reply["refresh_token"]
        except (KeyError, TypeError):
            raise ValueError("the server's token reply has no access_token/refresh_token") from None
        lifetime = float(reply.get("expires_in") or 900)
        identity = reply.get("identity") or {}
        return cls(
            access_token=access,
            refresh_token=refresh,
            expires_at=time.time() + lifetime,
            lifetime=lifetime,
            principal=reply.get("principal") or (previous.principal if previous else None),
            username=identity.get("id") or (previous.username if previous else None),
        )

    def expiring(self, now: float | None = None) -> bool:
        """True when the access token expires soon: within a quarter of its lifetime, at most a minute."""
        margin = min(60.0, self.lifetime / 4)
        return (now if now is not None else time.time()) >= self.expires_at - margin

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> "Tokens":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def __reduce__(self):
        raise TypeError("Tokens hold secrets and are not picklable")


class TokenStore:
    """Where one server's tokens live. ``locked()`` serialises refreshes."""

    def load(self) -> Tokens | None:  # pragma: no cover - interface
        raise NotImplementedError

    def save(self, tokens: Tokens) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def clear(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def locked(self) -> contextlib.AbstractContextManager:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def persistent(self) -> bool:
        return False


class MemoryTokenStore(TokenStore):
    """Tokens kept in this process only (``remember_me=False``)."""

    def __init__(self) -> None:
        self._tokens: Tokens | None = None
        self._lock = threading.RLock()

    def load(self) -> Tokens | None:
        return self._tokens

    def save(self, tokens: Tokens) -> None:
        self._tokens = tokens

    def clear(self) -> None:
        self._tokens = None

    def locked(self):
        return self._lock

    def __repr__(self) -> str:
        return "<MemoryTokenStore>"


class FileTokenStore(TokenStore):
    """Tokens in one JSON file (mode 0600), shared by every process of this user."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = Path(path)
        self._thread_lock = threading.RLock()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def persistent(self) -> bool:
        return True

    def _ensure_directory(self) -> None:
        private_directory(self._path.parent)

    def load(self) -> Tokens | None:
        try:
            text = self._path.read_text()
        except FileNotFoundError:
            return None
        try:
            return Tokens.from_json(json.loads(text))
        except (ValueError, TypeError):
            return None  # unreadable (e.g. written by something else): as if logged out

    def save(self, tokens: Tokens) -> None:
        self._ensure_directory()
        # mkstemp creates the file with mode 0600; os.replace swaps it in whole.
        fd, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=".tokens-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(tokens.to_json(), file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across this process's threads and every other process."""
        with self._thread_lock:
            self._ensure_directory()
            lock_path = self._path.with_name(self._path.name + ".lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _lock_file(fd)
                yield
            finally:
                os.close(fd)  # closing releases the lock

    def __repr__(self) -> str:
        return f"<FileTokenStore {str(self._path)!r}>"


def _lock_file(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: LK_LOCK waits up to ~10 s, then raises OSError
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
