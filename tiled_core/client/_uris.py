"""Tiled URIs: the API base and node path in a URI, and the API key moved out of its query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = ["API_PREFIX", "parse_node_uri", "split_api_key"]

API_PREFIX = "/api/v1"
_ROUTES = ("metadata", "search", "array/full", "array/block", "table/full", "table/partition",
           "container/full", "awkward/full", "awkward/buffers", "node/full", "distinct", "revisions")


def split_api_key(uri: str) -> tuple[str, str | None]:
    """Remove ``api_key=`` from the query: keys travel in a header, never in URLs."""
    if not isinstance(uri, str):
        raise TypeError(f"the URI must be a string like 'http://host:8000/api/v1', not {type(uri).__name__}")
    try:
        parts = urlsplit(uri.strip())
    except ValueError as error:  # e.g. an unclosed IPv6 bracket
        raise ValueError(f"malformed URI {uri!r}: {error}") from None
    _refuse_unmeant(uri, parts)
    query = parse_qsl(parts.query, keep_blank_values=True)
    keys = [v for k, v in query if k == "api_key"]
    return urlunsplit(parts._replace(query="")), (keys[-1] if keys else None)


def _refuse_unmeant(uri: str, parts) -> None:
    """Refuse what would otherwise be dropped or mangled silently (no part of the query is echoed)."""
    if any(ch.isspace() or not ch.isprintable() for ch in uri.strip()):
        raise ValueError(f"the URI {_shown(parts)!r} contains spaces or control characters; "
                         "percent-encode them (%20) if they belong to a key")
    if "#" in uri:
        raise ValueError(f"the URI {_shown(parts)!r} has a '#' fragment, which no Tiled request uses; remove it")
    if parts.query:
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
        if names != ["api_key"] * len(names) or not names or "?" in parts.query:
            raise ValueError(f"the URI {_shown(parts)!r} has query parameters other than api_key=, which would be "
                             "ignored; remove them (give the node's path, and slices or formats in the call)")


def _shown(parts) -> str:
    """The URI without user info, query or fragment (they may hold a password or an API key)."""
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment=""))


def parse_node_uri(uri: str) -> tuple[str, list[str]]:
    """``http://h/api/v1/metadata/a/b`` -> (``http://h/api/v1``, ["a", "b"])."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"Tiled URIs start with http:// or https://, not {uri!r}")
    if "@" in parts.netloc:
        # Not echoed: the part before "@" may be a password. Tiled takes no credentials in URLs.
        raise ValueError(f"a Tiled URI carries no user name or password (found 'user@' before {parts.hostname!r}); "
                         "use api_key= or log in")
    if not parts.hostname:
        raise ValueError(f"no host in URI {uri!r}")
    if any(ch.isspace() or not ch.isprintable() for ch in parts.netloc):
        raise ValueError(f"the host part of URI {uri!r} contains spaces or control characters")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"URI {uri!r} has an invalid port: expected a number from 1 to 65535")
    path = parts.path.rstrip("/")
    if API_PREFIX in path:
        prefix, _, rest = path.partition(API_PREFIX)
        rest = rest.strip("/")
        node: list[str] = []
        for route in _ROUTES:
            if rest == route or rest.startswith(route + "/"):
                node = [p for p in rest[len(route):].split("/") if p]
                break
        else:
            if rest:
                raise ValueError(f"cannot tell which node {uri!r} names: expected .../api/v1/metadata/<path>")
        base = urlunsplit((parts.scheme, parts.netloc, prefix + API_PREFIX, "", ""))
        return base, node
    base = urlunsplit((parts.scheme, parts.netloc, path + API_PREFIX, "", ""))
    return base, []
