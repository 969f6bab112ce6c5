from __future__ import annotations

import dataclasses
import enum


class StructureFamily(str, enum.Enum):
    container = "container"
    array = "array"
    table = "table"
    sparse = "sparse"
    awkward = "awkward"
    ragged = "ragged"
    bytes = "bytes"


@dataclasses.dataclass(frozen=True, eq=False)
class Spec:
    """A named specification a node conforms to (``{"name", "version"}`` on the wire).

    Equal to any spec with the same name and version, including the reference
    client's ``Spec`` (``tiled.structures.core.Spec``), and hashed alike.
    """

    name: str
    version: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > 255:
            raise ValueError(f"spec name must be a non-empty string of at most 255 characters, not {self.name!r}")

    @classmethod
    def coerce(cls, value: "Spec | str | dict") -> "Spec":
        if isinstance(value, Spec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict):
            return cls(value["name"], value.get("version"))
        if isinstance(getattr(value, "name", None), str) and hasattr(value, "version"):  # e.g. the reference's Spec
            return cls(value.name, value.version)
        raise TypeError(f"a spec is a Spec, a name or a {{'name', 'version'}} dict, not {type(value).__name__}")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Spec) or (type(other).__name__ == "Spec" and hasattr(other, "name")
                                       and hasattr(other, "version")):
            return (self.name, self.version) == (other.name, other.version)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    def __repr__(self) -> str:
        # The name positionally, as the reference shows it.
        version = f", version={self.version!r}" if self.version is not None else ""
        return f"{type(self).__name__}({self.name!r}{version})"

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version}
