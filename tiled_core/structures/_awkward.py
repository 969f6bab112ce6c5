from __future__ import annotations

import copy
import dataclasses


@dataclasses.dataclass(frozen=True)
class AwkwardStructure:
    """An awkward array: its ``length`` and its ``form`` (awkward's form as a JSON dict)."""

    length: int
    form: dict

    def __post_init__(self) -> None:
        if not isinstance(self.form, dict) or "class" not in self.form:
            raise ValueError(f"an awkward form is a dict with a 'class', not {self.form!r:.80}")
        if int(self.length) < 0:
            raise ValueError(f"length must be >= 0, not {self.length}")

    @classmethod
    def from_json(cls, data: dict) -> "AwkwardStructure":
        return cls(length=int(data["length"]), form=copy.deepcopy(data["form"]))

    def to_json(self) -> dict:
        return {"length": self.length, "form": copy.deepcopy(self.form)}
