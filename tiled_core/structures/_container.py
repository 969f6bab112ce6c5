from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ContainerStructure:
    """``count`` (exact only up to the server's exact-count limit) and any inlined ``contents``."""

    count: int | None
    contents: dict | None = None

    @classmethod
    def from_json(cls, structure: dict | None) -> "ContainerStructure":
        structure = structure or {}
        return cls(count=structure.get("count"), contents=structure.get("contents"))

    def to_json(self) -> dict:
        return {"count": self.count, "contents": self.contents}
