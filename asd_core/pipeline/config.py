"""One config object for a pipeline run, read from TOML; every key and default is documented
in ``deployments/pipeline.toml`` (a test keeps that file equal to the defaults here).

Sections: ``[data]`` ingest, ``[mix]`` mixtures, ``[teacher]`` / ``[student]`` training (their
remaining keys are ``TeacherTrainConfig`` / ``StudentTrainConfig`` fields), ``[embed]``,
``[score]``, ``[report]``, ``[register]`` and ``[runner]`` (task runner and threads).
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from asd_core.config import DEFAULT_WORKSPACE_NAME, IngestConfig
from asd_core.mixing.config import MixConfig, NoiseLibraryConfig
from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.sweep import AUTO, RunSpec, expand, parse_values
from asd_core.training.config import StudentTrainConfig, TeacherTrainConfig

SPECTRAL_ENCODERS = ("stft-mean", "logmel-stats")
NEURAL_ENCODERS = ("teacher", "student", "oracle", "beats")
TASK_RUNNERS = ("thread", "dask")


class PipelineConfigError(ValueError):
    """A config file or override that cannot describe a run; the message names the key."""


def flattened(default_factory, *names: str):
    """A field holding a stage's own config dataclass whose ``names`` (dotted for nested ones) are
    keys of the enclosing TOML table: the stage dataclass declares them and validates them, once."""
    return field(default_factory=default_factory, metadata={"flatten": names})


@dataclass
class DataConfig:
    roots: list[str] = field(default_factory=list)  # DCASE-style dataset roots
    dataset_name: str = ""  # "" = derived from each root
    ground_truth: str = ""  # folder with evaluator ground truth, "" = none
    ingest: IngestConfig = flattened(IngestConfig, "audio.channel", "audio.channels", "audio.channel_roles",
                                     "audio.sample_rate", "audio.storage_dtype", "min_relative_duration")


@dataclass
class MixStageConfig:
    enabled: bool = True
    noise: str = ""  # folder of <class>/*.wav noise recordings, "" = ingested supplemental noise only
    supplemental: bool = True
    mismatched: list[str] = field(default_factory=list)  # held-out noise classes, [] = automatic
    noise_from_channel: str = ""  # "far": the training clips' far channels join the noise library, "" = no
    params: MixConfig = flattened(MixConfig, "seed", "snr_min", "snr_max", "mixtures_per_clip", "lam")

    def __post_init__(self) -> None:
        if self.noise_from_channel:  # NoiseLibraryConfig's own check
            NoiseLibraryConfig(noise_from_channel=self.noise_from_channel)  # the loader prefixes "[mix]: "


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
    """Runs of each encoder: every normalization x K x r (asd_core/scoring/sweep.py); ``k`` and ``r``
    are a value, a list (each value its own run) or "auto" (chosen per section without labels)."""

    normalizations: list[str] = field(default_factory=lambda: ["none", "knn", "gwrp"])
    k: int | str | list[int | str] = field(default=ScoringConfig.k, metadata={"grid": int})
    r: float | str | list[float | str] = field(default=ScoringConfig.r, metadata={"grid": float})
    scoring: ScoringConfig = flattened(ScoringConfig, "threshold_quantile", "index_type")
    strict: bool = False

    def runs(self, metric: str = "cosine") -> list[tuple[str, RunSpec]]:
        """(stage name, run) of every run; names are the normalization alone when K and r are single
        values (the stage names of earlier versions), else the run's label, e.g. ``knn-k=2``."""
        ks, rs = parse_values(self.k, "k"), parse_values(self.r, "r")
        specs = expand(self.normalizations, ks, rs, metric=metric, threshold_quantile=self.scoring.threshold_quantile,
                       index_type=self.scoring.index_type)
        single = len(ks) == 1 and len(rs) == 1
        return [(spec.config.normalization if single else spec.label().replace(" ", "-"), spec) for spec in specs]


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
    workspace: str = DEFAULT_WORKSPACE_NAME
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
        d = {f.name: _table(getattr(self, f.name)) if f.name != "workspace" else self.workspace for f in fields(self)}
        d["teacher"] = {"enabled": self.teacher.enabled, "checkpoint": self.teacher.checkpoint, **self.teacher.train.to_dict()}
        d["student"] = {"enabled": self.student.enabled, **self.student.train.to_dict()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PipelineConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise PipelineConfigError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        d = check_types(d)
        kw = {"workspace": str(d.get("workspace", cls.workspace))}
        simple = {"data": DataConfig, "mix": MixStageConfig, "embed": EmbedConfig, "score": ScoreConfig,
                  "report": ReportConfig, "register": RegisterConfig, "runner": RunnerConfig}
        for name, klass in simple.items():
            kw[name] = _build(klass, d.get(name, {}), name)
        teacher = dict(d.get("teacher", {}))
        kw["teacher"] = TeacherStageConfig(enabled=teacher.pop("enabled", True), checkpoint=teacher.pop("checkpoint", ""),
                                           train=_train(TeacherTrainConfig, teacher, "teacher"))
        student = dict(d.get("student", {}))
        kw["student"] = StudentStageConfig(enabled=student.pop("enabled", True),
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
        if self.mix.enabled and self.student.enabled and self.student.train.objective.lam != self.mix.params.lam:
            raise PipelineConfigError(f"student.objective.lam ({self.student.train.objective.lam}) differs from mix.lam "
                                      f"({self.mix.params.lam}): the alignment target must use the lambda the mixtures were made with")
        if self.runner.task_runner not in TASK_RUNNERS:
            raise PipelineConfigError(f"runner.task_runner must be one of {', '.join(TASK_RUNNERS)}, got {self.runner.task_runner!r}")
        if not self.score.normalizations:
            raise PipelineConfigError("score.normalizations is empty")
        try:
            runs = self.score.runs()
        except ValueError as exc:
            raise PipelineConfigError(f"[score]: {exc}") from None
        if self.register.enabled:
            if self.register.encoder not in self.embed.encoders:
                raise PipelineConfigError(f"register.encoder {self.register.encoder!r} is not in embed.encoders")
            if self.register.normalization not in self.score.normalizations + [name for name, _ in runs]:
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


# --- types: every value a file or --set gives is checked against the dataclass field types, here ---

def _field_types(klass) -> dict:
    """TOML key -> resolved annotation of a config dataclass (flattened stage configs contribute
    the keys they name, with the type their own dataclass declares)."""
    hints = typing.get_type_hints(klass)
    out = {}
    for f in fields(klass):
        for path in f.metadata.get("flatten", ()):
            tp = hints[f.name]
            for part in path.split("."):
                tp = typing.get_type_hints(tp)[part]
            out[path.rsplit(".", 1)[-1]] = tp
        if "flatten" not in f.metadata:
            out[f.name] = Grid(f.metadata["grid"]) if "grid" in f.metadata else hints[f.name]
    return out


class Grid:
    """The type of a parameter that takes a value, "auto" or a list of them (scoring/sweep.py)."""

    def __init__(self, item: type):
        self.item = item


def _table(section) -> dict:
    """A section dataclass as its TOML table (flattened stage configs spread into it)."""
    out = {}
    for f in fields(section):
        value = getattr(section, f.name)
        for path in f.metadata.get("flatten", ()):
            leaf = value
            for part in path.split("."):
                leaf = getattr(leaf, part)
            out[path.rsplit(".", 1)[-1]] = list(leaf) if isinstance(leaf, tuple) else leaf
        if "flatten" not in f.metadata:
            out[f.name] = asdict(value) if is_dataclass(value) else value
    return out


def _nested(klass, values: dict):
    """Build ``klass`` from dotted paths -> values (paths absent keep the dataclass defaults)."""
    own = {p: v for p, v in values.items() if "." not in p}
    for name in {p.split(".", 1)[0] for p in values if "." in p}:
        sub = {p.split(".", 1)[1]: v for p, v in values.items() if p.startswith(name + ".")}
        own[name] = _nested(typing.get_type_hints(klass)[name], sub)
    return klass(**own)


def _section_types() -> dict:
    """The type of every key of every TOML table; [teacher] and [student] flatten their training config."""
    types_ = {name: tp for name, tp in _field_types(PipelineConfig).items()}
    types_["teacher"] = {**{k: v for k, v in _field_types(TeacherStageConfig).items() if k != "train"},
                         **_field_types(TeacherTrainConfig)}
    types_["student"] = {**{k: v for k, v in _field_types(StudentStageConfig).items() if k != "train"},
                         **_field_types(StudentTrainConfig)}
    return types_


def check_types(d: dict) -> dict:
    """``d`` with every known key checked against its field type (ints widened to float where a float is
    expected); a wrong type is a PipelineConfigError naming section.key, the value and the type expected.
    Unknown keys are left for the builders, which list the known ones."""
    return _check_table(d, _section_types(), "")


def _check_table(values, expected: dict, prefix: str) -> dict:
    if not isinstance(values, dict):
        raise PipelineConfigError(f"[{prefix.rstrip('.')}] must be a table, got {_show(values)}")
    out = {}
    for key, value in values.items():
        tp = expected.get(key)
        if isinstance(tp, dict) or (tp is not None and is_dataclass(tp)):
            sub = tp if isinstance(tp, dict) else _field_types(tp)
            out[key] = _check_table(value, sub, f"{prefix}{key}.")
        else:
            out[key] = value if tp is None else _check_value(value, tp, f"{prefix}{key}")
    return out


def _check_value(value, tp, key: str):
    """``value`` if it is of type ``tp`` (bool is never an int; an int is a float), else a clear error."""
    ok, converted = _convert(value, tp)
    if not ok:
        raise PipelineConfigError(f"{key} = {_show(value)}: expected {_describe(tp)}")
    return converted


def _convert(value, tp) -> tuple[bool, object]:
    if isinstance(tp, Grid):
        one = lambda v: (True, v) if v == AUTO else _convert(v, tp.item)  # noqa: E731
        if isinstance(value, list):
            items = [one(v) for v in value]
            return bool(items) and all(ok for ok, _ in items), [v for _, v in items]
        return one(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            ok, converted = _convert(value, arm)
            if ok:
                return True, converted
        return False, None
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if tp is str:
        return isinstance(value, str), value
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        arm = args[0] if args else typing.Any
        items = [_convert(v, arm) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if tp is typing.Any:
        return True, value
    return False, None


def _describe(tp) -> str:
    """A type in a user's words: 'an integer', 'a list of numbers', 'a string or an integer'."""
    if isinstance(tp, Grid):
        return f'{_describe(tp.item)}, "{AUTO}" or a list of them'
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("unset" if a is type(None) else _describe(a) for a in args)
    if origin in (list, tuple):
        inner = _describe(args[0]) if args else "values"
        return "a list of " + {"an integer": "integers", "a number": "numbers", "a string": "strings",
                               "true or false": "booleans"}.get(inner, inner)
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _show(value) -> str:
    """A value as TOML would spell it (strings quoted, so an empty --set value shows as "")."""
    from asd_core.pipeline.toml import format_value

    try:
        return format_value(value)
    except TypeError:
        return repr(value)


def _build(klass, values: dict, section: str):
    if not isinstance(values, dict):
        raise PipelineConfigError(f"[{section}] must be a table")
    names = set(_field_types(klass))
    unknown = set(values) - names
    if unknown:
        raise PipelineConfigError(f"[{section}]: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    values = dict(values)
    try:
        for f in fields(klass):
            paths = f.metadata.get("flatten", ())
            if paths:
                given = {p: values.pop(p.rsplit(".", 1)[-1]) for p in paths if p.rsplit(".", 1)[-1] in values}
                values[f.name] = _nested(typing.get_type_hints(klass)[f.name], given)
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
