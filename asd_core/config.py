"""Configuration objects: every path and parameter of a stage flows through these."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path

def option(default=MISSING, *, help: str, default_factory=MISSING, **meta):
    """A config field that is also a command-line option: its help text (and optional ``flag``,
    ``choices``, ``metavar``) live here, once; flows/cli/options.py builds the option from it."""
    return field(default=default, default_factory=default_factory, metadata={"help": help, **meta})


DEFAULT_WORKSPACE_NAME = "./asd-workspace"  # as spelled in --help, flow parameters and the TOML default
DEFAULT_WORKSPACE = Path(DEFAULT_WORKSPACE_NAME)
PIPELINE_SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Workspace:
    """The folder that holds everything a run produces.

    Layout: ``parquet/<artifact>/...`` (one schema per artifact), ``asd.duckdb``,
    ``indexes/`` (FAISS indexes + manifests), ``mlflow/`` (tracking store and artifacts).
    """

    root: Path = DEFAULT_WORKSPACE

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())

    @property
    def parquet(self) -> Path:
        return self.root / "parquet"

    def artifact_dir(self, artifact: str) -> Path:
        return self.parquet / artifact

    @property
    def duckdb_path(self) -> Path:
        return self.root / "asd.duckdb"

    @property
    def indexes(self) -> Path:
        return self.root / "indexes"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    def ensure(self) -> "Workspace":
        self.parquet.mkdir(parents=True, exist_ok=True)
        return self


CHANNEL_ROLES = ("near", "far")  # DCASE 2026 Task 2: channel 0 near the machine, channel 1 far from it
SINGLE_CHANNEL_CHOICES = ("mean", "near", "far")


@dataclass(frozen=True)
class AudioConfig:
    """How a file becomes the pipeline waveform(s) (methods.md section 5: DCASE audio is 16 kHz).

    ``channel``: ``"auto"`` keeps both channels of two-channel files (roles ``channel_roles``; the
    near one is the clip's primary waveform, the one every stage reads) and channel 0 of files with
    more channels (all of them with ``channels = "all"``, roles ``ch<N>``); an index, ``"mean"``,
    ``"near"`` or ``"far"`` keeps that one channel, as ingest did before two-channel data. Mono
    files always yield their one channel. ``storage_dtype`` is ``int16`` (half the size; exact for
    PCM16 sources) or ``float32``.
    """

    sample_rate: int = option(PIPELINE_SAMPLE_RATE, help="pipeline sample rate; other rates are resampled")
    channel: int | str = option("auto", help="channels kept: 'auto' (two-channel files: near and far; more "
                                             "channels: channel 0), or one channel: an index, 'mean', 'near' or 'far'")
    channels: str = option("auto", choices=("auto", "all"),
                           help="'all': keep every channel of multichannel files (roles ch<N>), with --channel auto")
    channel_roles: tuple[str, ...] = option(CHANNEL_ROLES, metavar="ROLE0,ROLE1",
                                            help="roles of channels 0 and 1 of two-channel files, e.g. far,near "
                                                 "when a dataset's documentation says so")
    storage_dtype: str = option("int16", choices=("int16", "float32"), help="waveform storage type")

    def __post_init__(self) -> None:
        if self.storage_dtype not in ("int16", "float32"):
            raise ValueError(f"storage_dtype must be 'int16' or 'float32', got {self.storage_dtype!r}")
        if isinstance(self.channel, str) and self.channel not in ("auto", *SINGLE_CHANNEL_CHOICES):
            try:
                object.__setattr__(self, "channel", int(self.channel))
            except ValueError:
                raise ValueError(f"channel must be 'auto', an integer index, 'mean', 'near' or 'far', got {self.channel!r}") from None
        if isinstance(self.channel, bool) or (isinstance(self.channel, int) and self.channel < 0):
            raise ValueError(f"channel must be >= 0, got {self.channel}")
        if self.channels not in ("auto", "all"):
            raise ValueError(f"channels must be 'auto' or 'all', got {self.channels!r}")
        if self.channels == "all" and self.channel != "auto":
            raise ValueError(f"channels = 'all' keeps every channel; it cannot be combined with channel = {self.channel!r}")
        roles = self.channel_roles
        roles = tuple(r.strip() for r in roles.split(",")) if isinstance(roles, str) else tuple(roles)
        if sorted(roles) != sorted(CHANNEL_ROLES):
            raise ValueError(f"channel_roles must name {' and '.join(CHANNEL_ROLES)} once each, e.g. far,near; got {','.join(roles)}")
        object.__setattr__(self, "channel_roles", roles)
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")

    @property
    def channel_label(self) -> str:
        return str(self.channel)

    @property
    def keeps_several(self) -> bool:
        """Whether multichannel files may keep more than one channel (``channel = "auto"``)."""
        return self.channel == "auto"


@dataclass(frozen=True)
class IngestConfig:
    """Parameters of the ingest stage."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    # A clip shorter than this fraction of the median duration of its machine type is
    # quarantined ("far shorter than its siblings").
    min_relative_duration: float = 0.5
    # Rows per Parquet row group of the audio artifact (bounds memory while streaming).
    audio_rows_per_group: int = 32
    # Optional folder with DCASE evaluator ground truth (labels/domains of anonymised eval clips).
    ground_truth: Path | None = None
