"""Command-line options generated from config dataclass fields, so a parameter is declared once.

A field becomes ``--<name-with-dashes>`` (or ``metadata["flag"]``) when its metadata has ``help``;
its type, ``choices`` and default come from the dataclass. Options default to ``None`` ("not
given"), so a config file or the dataclass default applies; ``given(args, klass)`` collects the
values a user did give, keyed by field name, for ``dataclasses.replace`` or a config dict.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing


def _scalar_type(tp):
    """The argparse ``type`` of a field annotation (``int | None`` -> int; ``int | str`` -> str)."""
    if isinstance(tp, str):
        raise TypeError(f"unresolved annotation {tp!r}")
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        return _scalar_type(arms[0]) if len(arms) == 1 else str
    return tp if tp in (int, float, str) else str


def config_fields(klass) -> list[dataclasses.Field]:
    """The fields of ``klass`` offered on the command line (those with help text)."""
    return [f for f in dataclasses.fields(klass) if "help" in f.metadata]


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_config_options(p: argparse.ArgumentParser | argparse._ArgumentGroup, klass, *, skip: tuple[str, ...] = (),
                       defaults: dict | None = None) -> None:
    """One option per help-carrying field of ``klass`` (``defaults`` overrides the default shown)."""
    hints = typing.get_type_hints(klass)
    for f in config_fields(klass):
        if f.name in skip:
            continue
        shown = (defaults or {}).get(f.name, _default(f))
        tp = hints[f.name]
        kwargs = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _scalar_type(tp)
            if "choices" in f.metadata:
                kwargs["choices"] = list(f.metadata["choices"])
            if "metavar" in f.metadata:
                kwargs["metavar"] = f.metadata["metavar"]
        if shown is not None and "%(default)" not in kwargs["help"]:
            kwargs["help"] += f" (default: {','.join(map(str, shown)) if isinstance(shown, tuple) else shown})"
        p.add_argument(flag(f), **kwargs)


def given(args: argparse.Namespace, klass, *, skip: tuple[str, ...] = ()) -> dict:
    """The options of ``klass`` the user gave, keyed by field name."""
    return {f.name: getattr(args, f.name) for f in config_fields(klass)
            if f.name not in skip and getattr(args, f.name, None) is not None}
