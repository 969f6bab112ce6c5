"""Markdown artifacts that summarise writes: node links, families, shapes, bytes."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["writes_markdown", "publish_writes", "apublish_writes"]

_COLUMNS = ("node", "family", "type", "shape", "dtype", "bytes")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return " × ".join(str(n) for n in value) or "scalar"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def writes_markdown(summaries: Iterable[dict], title: str = "Tiled writes") -> str:
    """A markdown table, one row per write summary (see ``_ops.describe``), with a total."""
    rows = list(summaries)
    lines = [f"### {title}", "", "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for s in rows:
        link = f"[{_cell(s['path'])}]({s['uri']})"
        lines.append("| " + " | ".join([link] + [_cell(s.get(c)) for c in _COLUMNS[1:]]) + " |")
    known = [s["bytes"] for s in rows if s.get("bytes") is not None]
    lines += ["", f"{len(rows)} node(s), {sum(known):,} bytes" + ("" if len(known) == len(rows) else " (some sizes unknown)")]
    return "\n".join(lines)


def publish_writes(summaries: Iterable[dict], *, key: str | None = None, title: str = "Tiled writes"):
    """Create the markdown artifact for these writes in the current run; returns its id."""
    from prefect.artifacts import create_markdown_artifact

    return create_markdown_artifact(markdown=writes_markdown(summaries, title), key=key, description=title)


async def apublish_writes(summaries: Iterable[dict], *, key: str | None = None, title: str = "Tiled writes"):
    """Async twin of ``publish_writes``."""
    from prefect.artifacts import acreate_markdown_artifact

    return await acreate_markdown_artifact(markdown=writes_markdown(summaries, title), key=key, description=title)
