"""The one way the project reads ``.pt`` files: ``torch.load(weights_only=True)``.

A model or checkpoint file in a workspace may have been planted or damaged; the weights-only
unpickler never runs code from it, and every way it can fail becomes one ``WeightsFileError``
whose message names the file and the problem (the CLI prints it as a one-line error).
"""

from __future__ import annotations

import _compat_pickle
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path


class WeightsFileError(ValueError):
    """A file that is not a loadable weights file; the message is ``<path>: <what is wrong>``."""

    def __init__(self, path: str | Path, reason: str, detail: str | None = None):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.detail = Path(path), reason, detail or reason

    def __reduce__(self):  # picklable (Prefect stores a failed task's exception)
        return type(self), (self.path, self.reason, self.detail)


# globals torch's weights-only unpickler allows outside the torch package (torch 2.9)
_ALLOWED = frozenset({"_codecs.encode", "builtins.bytearray", "builtins.complex", "builtins.set",
                      "collections.Counter", "collections.OrderedDict"})
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_OPCODE = re.compile(r"Unsupported operand (\d+)")


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> object:
    """The object stored in ``path`` (tensors, dicts, lists, numbers, strings), never a pickled callable."""
    import torch  # here, not at the top: the cheap checks below run in commands that never load torch

    path = _present(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says what matters
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip, EOF, unsafe-global, key errors of torch's legacy reader ...
        detail = describe_load_error(exc, path)
        raise WeightsFileError(path, f"not a weights file ({detail})", detail) from None


def check_weights_file(path: str | Path) -> Path:
    """Cheap checks before a long run, so a bad file is an error at once, not after start-up: it
    exists, is not empty, its archive is whole, and its pickle names no global outside torch.

    Reads no tensors and runs nothing; ``load_weights`` stays the authority when the file is used.
    """
    path = _present(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        raise WeightsFileError(path, "not a weights file (damaged or truncated archive)", "damaged or truncated archive")
    if unsafe := _first_foreign_global(path):
        detail = f"refused: unsafe pickle global '{unsafe}'"
        raise WeightsFileError(path, f"not a weights file ({detail})", detail)
    if not zipfile.is_zipfile(path) and not _is_pickle(path):
        detail = "not a torch archive or a pickle"
        raise WeightsFileError(path, f"not a weights file ({detail})", detail)
    return path


def _present(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(path, "is a folder, not a weights file" if path.is_dir() else "file not found")
    if path.stat().st_size == 0:
        raise WeightsFileError(path, "empty file (0 bytes)")
    return path


def _is_pickle(path: Path, limit: int = 1 << 24) -> bool:
    try:
        with open(path, "rb") as fh:
            for _ in pickletools.genops(fh.read(limit)):
                pass
    except Exception:
        return False
    return True


def describe_load_error(exc: Exception, path: Path) -> str:
    """A short reason for a failed weights-only ``torch.load`` (its own messages run to many lines)."""
    text = str(exc)
    if unsafe := _first_foreign_global(path):
        return f"refused: unsafe pickle global '{unsafe}'"
    if isinstance(exc, pickle.UnpicklingError) and (m := _GLOBAL.search(text)):
        return f"refused: unsafe pickle global '{m.group(1)}'"
    if isinstance(exc, pickle.UnpicklingError) and (m := _OPCODE.search(text)):
        return f"not a torch archive or a pickle of weights (pickle opcode {m.group(1)} refused)"
    if isinstance(exc, EOFError):
        return "file ends early (truncated?)"
    if isinstance(exc, zipfile.BadZipFile) or "zip archive" in text:
        return f"damaged or truncated archive: {text.splitlines()[0]}" if text else "damaged or truncated archive"
    if isinstance(exc, (KeyError, pickle.UnpicklingError)):
        return "not a torch archive or a pickle"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _first_foreign_global(path: Path, limit: int = 1 << 24) -> str | None:
    """The first global the weights-only unpickler would refuse that the pickle in ``path`` names
    (``data.pkl`` of a torch archive, or the file itself).

    Read with ``pickletools.genops``, which decodes opcodes without executing any of them.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                data = zf.read(name)[:limit] if name else b""
        else:
            with open(path, "rb") as fh:
                data = fh.read(limit)
    except Exception:  # damaged archive: nothing to name
        return None
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            module = None
            if op.name in ("GLOBAL", "INST"):
                module, name = str(arg).split(" ", 1)
                module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # protocol 2 writes __builtin__
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                module, name = strings[-2], strings[-1]
            elif isinstance(arg, str):
                strings.append(arg)
            if module and module.split(".")[0] != "torch" and f"{module}.{name}" not in _ALLOWED:
                return f"{module}.{name}"
    except Exception:  # not a pickle, or one that ends early
        return None
    return None
