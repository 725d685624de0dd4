"""A TOML writer for config dicts (scalars, lists of scalars, nested tables); ``None`` (TOML has
no null) is written as a comment, which reads back as the default."""

from __future__ import annotations

import json


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def format_value(v) -> str:
    """One value in TOML syntax (as written by ``dumps``); also how config errors show a value."""
    return _value(v)


def dumps(d: dict, _prefix: str = "") -> str:
    lines, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif v is None:
            lines.append(f"# {k} =   (unset)")
        else:
            lines.append(f"{k} = {_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        name = f"{_prefix}{k}"
        out += f"\n[{name}]\n" + dumps(v, name + ".")
    return out
