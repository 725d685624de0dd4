"""An encoder as a name plus the options that build it: the only place encoder options are assembled.

The CLI (``asd embed``), the pipeline and the student flow describe encoders with these
constructors; ``from_card`` rebuilds one from a stored ``encoder.json`` (embeddings, MLflow
bundles). Specs are plain data (JSON-serialisable options), so Prefect flows take them as
parameters and cache keys hash them; building the encoder (``build``) is what loads torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Options that name files: a cache key hashes the files' content instead of their paths.
PATH_OPTIONS = ("model", "teacher", "checkpoint")


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    options: dict = field(default_factory=dict)

    # --- constructors, one per encoder family ---
    @classmethod
    def spectral(cls, name: str) -> "EncoderSpec":
        """stft-mean / logmel-stats: no options."""
        return cls(name)

    @classmethod
    def teacher(cls, model: str | Path) -> "EncoderSpec":
        return cls("teacher", {"model": str(model)})

    @classmethod
    def student(cls, model: str | Path) -> "EncoderSpec":
        return cls("student", {"model": str(model)})

    @classmethod
    def beats(cls, checkpoint: str | Path | None, layer: int | None = None, pooling: str = "mean",
              clip_seconds: float | None = None, clip_mode: str | None = None) -> "EncoderSpec":
        options = {"checkpoint": str(checkpoint) if checkpoint else None, "layer": layer, "pooling": pooling}
        if clip_mode is not None:  # the pipeline never sets them: its stored options stay as they were
            options.update(clip_seconds=clip_seconds, clip_mode=clip_mode)
        return cls("beats", options)

    @classmethod
    def oracle(cls, teacher: str | Path, lam: float = 0.5, layer: int | None = None,
               pooling: str | None = None) -> "EncoderSpec":
        """lam * teacher(clean) + (1 - lam) * teacher(noise) (methods.md section 3); ``layer`` and
        ``pooling`` apply to a BEATs checkpoint teacher only."""
        options = {"teacher": str(teacher), "lam": lam}
        if not Path(teacher).is_dir() and pooling is not None:
            options.update(layer=layer, pooling=pooling)
        return cls("oracle", options)

    @classmethod
    def of_teacher(cls, teacher: str | Path, lam: float, layer: int | None = None, pooling: str = "mean") -> dict[str, "EncoderSpec"]:
        """The frozen teacher (a teacher folder or a BEATs checkpoint) and the oracle built from it,
        by the name each is embedded under."""
        if Path(teacher).is_dir():
            return {"teacher": cls.teacher(teacher), "oracle": cls.oracle(teacher, lam)}
        return {"beats": cls.beats(teacher, layer, pooling), "oracle": cls.oracle(teacher, lam, layer, pooling)}

    @classmethod
    def from_card(cls, card: dict, folder: str | Path | None = None) -> "EncoderSpec":
        """The spec stored in an ``encoder.json`` card; ``bundled_files`` (MLflow bundles) are
        resolved against ``folder``."""
        options = dict(card.get("options") or {})
        for key, rel in (card.get("bundled_files") or {}).items():
            options[key] = str(Path(folder) / rel) if folder is not None else rel
        return cls(card["registry_name"], options)

    # --- use ---
    def key_options(self) -> dict:
        """Options without the paths of model files (keys hash those files' content instead)."""
        return {k: v for k, v in self.options.items() if k not in PATH_OPTIONS}

    def check(self) -> None:
        """Cheap checks of the files the encoder will load (one-line errors before a flow starts)."""
        check_encoder_options(self.name, self.options)

    def build(self):
        """The encoder itself (loads torch and the model files)."""
        from asd_core.encoders.registry import get_encoder

        return get_encoder(self.name, **self.options)


def check_encoder_options(name: str, options: dict) -> None:
    """Cheap checks of the model files ``get_encoder(name, **options)`` will load (a folder of the
    wrong kind, an empty, damaged or planted weights file), so a command fails at once with one
    line, before a flow run starts; reads no tensors."""
    from asd_core.storage.models import check_model_folder
    from asd_core.storage.weights import check_weights_file

    if name in ("teacher", "student") and options.get("model"):
        check_model_folder(options["model"], name)
    elif name == "oracle" and options.get("teacher"):
        teacher = Path(options["teacher"])
        check_model_folder(teacher, "teacher") if teacher.is_dir() else check_weights_file(teacher)
    elif name == "beats" and options.get("checkpoint"):
        check_weights_file(options["checkpoint"])
