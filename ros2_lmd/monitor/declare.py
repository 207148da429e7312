"""How a setting is declared, once: its default, description and allowed range as dataclass field
metadata. `MonitorParams` (the node parameters) declares its own settings this way and takes the
alert thresholds from `AlertConfig`, their one owner, with `copied_from`."""

from __future__ import annotations

from dataclasses import Field, field, fields
from typing import Any


def setting(
    default: Any,
    description: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """A dataclass field for a setting: `default`, what it does, an inclusive numeric range or the
    allowed strings."""
    return field(
        default=default, metadata={"description": description, "min": min, "max": max, "choices": choices}
    )


def is_setting(f: Field[Any]) -> bool:
    """Whether the dataclass field `f` was declared with `setting` (a user-facing parameter)."""
    return "description" in f.metadata


def copied_from(owner: type, name: str) -> Any:
    """The field `name` of the dataclass `owner`, declared there with `setting`, as a field of
    another dataclass: same default, description and range."""
    (original,) = [f for f in fields(owner) if f.name == name]
    if not is_setting(original):
        raise TypeError(f"{owner.__name__}.{name} is not declared with setting()")
    return field(default=original.default, metadata=original.metadata)
