"""One config object for a pipeline run, read from TOML; every key and default is documented
in ``deployments/pipeline.toml`` (a test keeps that file equal to the defaults here).

Sections: ``[data]`` ingest, ``[mix]`` mixtures, ``[teacher]`` / ``[student]`` training (their
remaining keys are ``TeacherTrainConfig`` / ``StudentTrainConfig`` fields), ``[embed]``,
``[score]``, ``[report]``, ``[register]`` and ``[runner]`` (task runner and threads).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from asd_core.training.student import StudentTrainConfig
from asd_core.training.teacher import TeacherTrainConfig

SPECTRAL_ENCODERS = ("stft-mean", "logmel-stats")
NEURAL_ENCODERS = ("teacher", "student", "oracle", "beats")
TASK_RUNNERS = ("thread", "dask")


class PipelineConfigError(ValueError):
    """A config file or override that cannot describe a run; the message names the key."""


@dataclass
class DataConfig:
    roots: list[str] = field(default_factory=list)  # DCASE-style dataset roots
    dataset_name: str = ""  # "" = derived from each root
    ground_truth: str = ""  # folder with evaluator ground truth, "" = none
    channel: str = "0"
    sample_rate: int = 16_000
    storage_dtype: str = "int16"
    min_relative_duration: float = 0.5


@dataclass
class MixStageConfig:
    enabled: bool = True
    noise: str = ""  # folder of <class>/*.wav noise recordings, "" = ingested supplemental noise only
    supplemental: bool = True
    mismatched: list[str] = field(default_factory=list)  # held-out noise classes, [] = automatic
    seed: int = 0
    snr_min: float = -10.0
    snr_max: float = 10.0
    mixtures_per_clip: int = 1
    lam: float = 0.5


@dataclass
class TeacherStageConfig:
    enabled: bool = True
    checkpoint: str = ""  # a BEATs checkpoint used as the teacher instead of training one
    train: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)


@dataclass
class StudentStageConfig:
    enabled: bool = True
    train: StudentTrainConfig = field(default_factory=StudentTrainConfig)


@dataclass
class EmbedConfig:
    encoders: list[str] = field(default_factory=lambda: ["stft-mean", "logmel-stats", "teacher", "student"])
    noisy_encoders: list[str] = field(default_factory=lambda: ["teacher", "student"])  # also scored on noisy test clips
    batch_size: int = 16
    workers: int = 0  # DataLoader workers per shard
    beats_layer: int = -1  # BEATs encoders: -1 = last layer
    beats_pooling: str = "mean"


@dataclass
class ScoreConfig:
    normalizations: list[str] = field(default_factory=lambda: ["none", "knn", "gwrp"])
    k: int = 1
    r: float = 0.9
    threshold_quantile: float = 0.9
    index_type: str = "exact"
    strict: bool = False


@dataclass
class ReportConfig:
    enabled: bool = True


@dataclass
class RegisterConfig:
    enabled: bool = True
    encoder: str = "student"  # the scoring run registered: this encoder ...
    normalization: str = "knn"  # ... with this normalization
    model_name: str = "asd-encoder"
    tracking_uri: str = ""  # "" = sqlite store in <workspace>/mlflow


@dataclass
class RunnerConfig:
    task_runner: str = "thread"  # thread | dask
    max_workers: int = 1  # shards at once on the thread runner (each already uses every core)
    dask_address: str = ""  # scheduler of an existing cluster; "" with dask = a LocalCluster
    dask_workers: int = 2  # worker processes of that LocalCluster
    threads: int = 0  # torch/FAISS threads per process, 0 = all cores (dask: cores / workers)
    device: str = ""  # training/embedding device, "" = cuda when available


@dataclass
class PipelineConfig:
    workspace: str = "./asd-workspace"
    data: DataConfig = field(default_factory=DataConfig)
    mix: MixStageConfig = field(default_factory=MixStageConfig)
    teacher: TeacherStageConfig = field(default_factory=TeacherStageConfig)
    student: StudentStageConfig = field(default_factory=StudentStageConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)

    # --- (de)serialisation: the TOML tables flatten the training configs into their stage ---
    def to_dict(self) -> dict:
        d = {f.name: asdict(getattr(self, f.name)) if f.name != "workspace" else self.workspace for f in fields(self)}
        d["teacher"] = {"enabled": self.teacher.enabled, "checkpoint": self.teacher.checkpoint, **self.teacher.train.to_dict()}
        d["student"] = {"enabled": self.student.enabled, **self.student.train.to_dict()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PipelineConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise PipelineConfigError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        kw = {"workspace": str(d.get("workspace", cls.workspace))}
        simple = {"data": DataConfig, "mix": MixStageConfig, "embed": EmbedConfig, "score": ScoreConfig,
                  "report": ReportConfig, "register": RegisterConfig, "runner": RunnerConfig}
        for name, klass in simple.items():
            kw[name] = _build(klass, d.get(name, {}), name)
        teacher = dict(d.get("teacher", {}))
        kw["teacher"] = TeacherStageConfig(enabled=bool(teacher.pop("enabled", True)), checkpoint=str(teacher.pop("checkpoint", "")),
                                           train=_train(TeacherTrainConfig, teacher, "teacher"))
        student = dict(d.get("student", {}))
        kw["student"] = StudentStageConfig(enabled=bool(student.pop("enabled", True)),
                                           train=_train(StudentTrainConfig, student, "student"))
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Cross-stage checks, so a run fails before its first stage rather than after an hour."""
        known = SPECTRAL_ENCODERS + NEURAL_ENCODERS
        for enc in self.embed.encoders + self.embed.noisy_encoders:
            if enc not in known:
                raise PipelineConfigError(f"embed: unknown encoder {enc!r}; choose from {', '.join(known)}")
        has_teacher = self.teacher.enabled or bool(self.teacher.checkpoint)
        needs = {"teacher": (has_teacher and not self.teacher.checkpoint, "teacher.enabled = true (and no teacher.checkpoint)"),
                 "beats": (bool(self.teacher.checkpoint), "teacher.checkpoint"),
                 "oracle": (has_teacher, "a teacher (teacher.enabled or teacher.checkpoint)"),
                 "student": (self.student.enabled and self.mix.enabled and has_teacher,
                             "student.enabled, mix.enabled and a teacher")}
        for enc in self.embed.encoders:
            ok, what = needs.get(enc, (True, ""))
            if not ok:
                raise PipelineConfigError(f"embed.encoders lists {enc!r}, which needs {what}")
        for enc in self.embed.noisy_encoders:
            if enc in self.embed.encoders and not self.mix.enabled:
                raise PipelineConfigError(f"embed.noisy_encoders lists {enc!r}, but noisy test clips need mix.enabled = true")
        if self.mix.enabled and self.student.enabled and self.student.train.objective.lam != self.mix.lam:
            raise PipelineConfigError(f"student.objective.lam ({self.student.train.objective.lam}) differs from mix.lam "
                                      f"({self.mix.lam}): the alignment target must use the lambda the mixtures were made with")
        if self.runner.task_runner not in TASK_RUNNERS:
            raise PipelineConfigError(f"runner.task_runner must be one of {', '.join(TASK_RUNNERS)}, got {self.runner.task_runner!r}")
        if not self.score.normalizations:
            raise PipelineConfigError("score.normalizations is empty")
        from asd_core.scoring.detector import ScoringConfig

        for norm in self.score.normalizations:
            try:
                ScoringConfig(normalization=norm, k=self.score.k, r=self.score.r, index_type=self.score.index_type,
                              threshold_quantile=self.score.threshold_quantile)
            except ValueError as exc:
                raise PipelineConfigError(f"[score]: {exc}") from None
        if self.register.enabled:
            if self.register.encoder not in self.embed.encoders:
                raise PipelineConfigError(f"register.encoder {self.register.encoder!r} is not in embed.encoders")
            if self.register.normalization not in self.score.normalizations:
                raise PipelineConfigError(f"register.normalization {self.register.normalization!r} is not in score.normalizations")

    def with_overrides(self, assignments: list[str]) -> "PipelineConfig":
        """Apply ``section.key=value`` strings (values in TOML syntax; bare words are strings)."""
        d = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise PipelineConfigError(f"override {item!r} is not of the form section.key=value")
            dotted, raw = item.split("=", 1)
            path = dotted.strip().split(".")
            node = d
            for part in path[:-1]:
                if not isinstance(node.get(part), dict):
                    raise PipelineConfigError(f"override {item!r}: no config section {'.'.join(path[:-1])!r}")
                node = node[part]
            if path[-1] not in node:
                raise PipelineConfigError(f"override {item!r}: unknown key {dotted.strip()!r}")
            node[path[-1]] = _parse_value(raw.strip())
        return PipelineConfig.from_dict(d)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> PipelineConfig:
    """Defaults, then the TOML file (if any), then ``overrides``."""
    cfg = PipelineConfig()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise PipelineConfigError(f"{p}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise PipelineConfigError(f"{p}: not valid TOML: {exc}") from None
        try:
            cfg = PipelineConfig.from_dict(data)
        except PipelineConfigError as exc:
            raise PipelineConfigError(f"{p}: {exc}") from None
    return cfg.with_overrides(overrides or [])


def _parse_value(raw: str):
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _build(klass, values: dict, section: str):
    if not isinstance(values, dict):
        raise PipelineConfigError(f"[{section}] must be a table")
    names = {f.name for f in fields(klass)}
    unknown = set(values) - names
    if unknown:
        raise PipelineConfigError(f"[{section}]: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    try:
        return klass(**values)
    except (TypeError, ValueError) as exc:
        raise PipelineConfigError(f"[{section}]: {exc}") from None


def _train(klass, values: dict, section: str):
    defaults = klass().to_dict()
    unknown = set(values) - set(defaults)
    if unknown:
        raise PipelineConfigError(f"[{section}]: unknown key(s) {', '.join(sorted(unknown))}")
    merged = {**defaults, **values}
    for nested in ("model", "objective"):  # a partial nested table keeps the other defaults
        if nested in defaults and isinstance(values.get(nested), dict):
            merged[nested] = {**defaults[nested], **values[nested]}
    try:
        return klass.from_dict(merged)
    except (TypeError, ValueError) as exc:
        raise PipelineConfigError(f"[{section}]: {exc}") from None
