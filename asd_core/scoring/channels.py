"""Which stored channel(s) a scoring run scores: one channel, a late fusion of several, or one
channel conditioned on another used as a noise reference (methods.md section 7, DCASE 2026 data).

- One channel (``asd score --channel far``): that channel's embeddings against its own references.
- Fusion (``--channels near,far --fusion mean|max``): each channel scored against its own
  references; the fused score of a clip is the mean / max of its per-channel normalised scores,
  and the section threshold the ``threshold_quantile`` of the references' fused leave-one-out
  scores, so one decision rule holds as for a single channel (LDN ratios are dimensionless).
- Noise reference (``--channel near --noise-reference far``): per section a ridge regression from
  far to near embeddings on the training normals (noise_reference.py, alpha by GCV), and the near
  residuals of references and test clips scored like any embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from asd_core.config import Workspace
from asd_core.scoring.distances import ScoringInputError
from asd_core.scoring.noise_reference import NoiseReference, NoiseReferenceError
from asd_core.storage.atomic import atomic_path
from asd_core.storage.paths import index_section_root
from asd_core.scoring.run import (SectionInput, SectionResult, channel_embedding_files, load_sections,
                                  machine_types_with_embeddings, score_section)

FUSIONS = ("mean", "max")


@dataclass(frozen=True)
class ChannelSpec:
    """``channels``: the channel roles scored (None: each clip's primary waveform); ``fusion`` how
    several are combined; ``noise_reference``: the channel whose embeddings explain away noise."""

    channels: tuple[str | None, ...] = (None,)
    fusion: str | None = None
    noise_reference: str | None = None

    def __post_init__(self):
        if not self.channels:
            raise ScoringInputError("no channel to score")
        if len(set(self.channels)) != len(self.channels):
            raise ScoringInputError(f"--channels names a channel twice: {','.join(map(str, self.channels))}")
        if len(self.channels) > 1:
            if self.fusion not in FUSIONS:
                raise ScoringInputError(f"--fusion must be one of {', '.join(FUSIONS)} to score several channels, "
                                        f"got {self.fusion!r}")
            if self.noise_reference is not None:
                raise ScoringInputError("--noise-reference conditions one channel: use it with --channel, not --channels")
        elif self.fusion is not None:
            raise ScoringInputError("--fusion combines several channels: give them with --channels near,far")
        if self.noise_reference is not None and self.noise_reference == self.channels[0]:
            raise ScoringInputError(f"--noise-reference {self.noise_reference} is the scored channel itself")

    @classmethod
    def from_options(cls, channel: str | None = None, channels: list[str] | None = None, fusion: str | None = None,
                     noise_reference: str | None = None) -> ChannelSpec:
        """The ``asd score`` options (--channel, --channels, --fusion, --noise-reference) as a spec."""
        if channels and channel is not None:
            raise ScoringInputError("give --channel (one channel) or --channels (several, fused), not both")
        return cls(tuple(channels) if channels else (channel,), fusion, noise_reference)

    @classmethod
    def from_params(cls, params: dict) -> ChannelSpec:
        """The spec a run was scored with, from its ``runs.params``."""
        channels = tuple(params["channels"]) if params.get("channels") else (params.get("channel"),)
        return cls(channels, params.get("fusion"), params.get("noise_reference"))

    def variants(self) -> list[str | None]:
        """The index variant of each scored channel (run.py ``SectionInput.variant``) where the
        channel has its own embeddings file; None where it is the primary waveform."""
        if self.noise_reference is not None:
            return [f"{self.channels[0] or 'primary'}-given-{self.noise_reference}"]
        return list(self.channels)

    @property
    def default(self) -> bool:
        return self == ChannelSpec()

    def run_params(self) -> dict:
        """What joins the run id and ``runs.params`` (nothing for the primary waveform)."""
        if len(self.channels) > 1:
            return {"channels": list(self.channels), "fusion": self.fusion}
        out = {} if self.channels[0] is None else {"channel": self.channels[0]}
        if self.noise_reference is not None:
            out["noise_reference"] = self.noise_reference
        return out


def machine_types_with_channels(ws: Workspace, encoder: str, version: str, spec: ChannelSpec) -> list[str]:
    """Machine types with embeddings of every channel the spec reads; none at all is an error that
    says which ``asd embed --channel`` is missing."""
    machine_types = machine_types_with_embeddings(ws, encoder, version)
    if spec.default:
        return machine_types
    wanted = [*spec.channels, *([spec.noise_reference] if spec.noise_reference else [])]
    have = [mt for mt in machine_types
            if all(channel_embedding_files(ws, encoder, version, mt, c) for c in wanted)]
    if not have:
        lacking = [c for c in wanted if c is not None and
                   not any(channel_embedding_files(ws, encoder, version, mt, c) for mt in machine_types)]
        raise FileNotFoundError(f"no machine type has {encoder} embeddings of "
                                f"{' and '.join(str(c) for c in wanted)} (version {version})"
                                + (f"; run `asd embed --encoder {encoder} --channel {lacking[0]}` first" if lacking else ""))
    return have


@dataclass
class ChannelSections:
    """The sections of one machine type as the runs of a ChannelSpec score them: one list of
    SectionInput per channel (fusion) or one list of residual sections (noise reference)."""

    spec: ChannelSpec
    per_channel: list[list[SectionInput]]
    fits: dict[str, dict]  # noise reference: section name -> fitted alpha, dof, ...


def load_channel_sections(ws: Workspace, encoder: str, version: str, machine_type: str, spec: ChannelSpec,
                          noisy: bool = False) -> ChannelSections:
    """Read every channel's embeddings once (one section list per channel, aligned) and, for a
    noise-reference run, replace each section's vectors by its near residuals."""
    if spec.noise_reference is not None:
        scored = load_sections(ws, encoder, version, machine_type, noisy, spec.channels[0])
        reference = {s.name: s for s in load_sections(ws, encoder, version, machine_type, False, spec.noise_reference)}
        fits = {}
        for sec in scored:
            fits[sec.name] = _condition(sec, reference.get(sec.name), spec)
            save_noise_reference(noise_reference_file(ws, encoder, version, sec), sec.conditioner)
        return ChannelSections(spec, [scored], fits)
    lists = [load_sections(ws, encoder, version, machine_type, noisy, c) for c in spec.channels]
    if len(lists) > 1:
        lists = _aligned(lists, spec)
        for secs in lists:
            for sec in secs:
                sec.keep_reference_scores = True
    return ChannelSections(spec, lists, {})


def _aligned(lists: list[list[SectionInput]], spec: ChannelSpec) -> list[list[SectionInput]]:
    """Sections every channel has, with the same reference and test clips in each."""
    names = set.intersection(*({s.name for s in secs} for secs in lists))
    out = [[s for s in secs if s.name in names] for secs in lists]
    for group in zip(*out):
        first = group[0]
        for c, sec in zip(spec.channels[1:], group[1:]):
            if sec.ref_ids != first.ref_ids or sec.test_ids != first.test_ids:
                raise ScoringInputError(f"{first.name}: the {spec.channels[0]} and {c} embeddings cover other clips; "
                                        f"embed both channels of the same clips (asd embed --channel {c})")
    return out


def _condition(sec: SectionInput, ref: SectionInput | None, spec: ChannelSpec) -> dict:
    """Replace the section's vectors by the residuals of the ridge from the reference channel."""
    if ref is None:
        raise ScoringInputError(f"{sec.name}: no {spec.noise_reference} embeddings; "
                                f"run `asd embed --channel {spec.noise_reference}` first")
    far_of = {cid: i for i, cid in enumerate(ref.ref_ids)} | {cid: len(ref.ref_ids) + i for i, cid in enumerate(ref.test_ids)}
    far_all = np.concatenate([ref.refs, ref.tests]) if ref.test_ids else ref.refs
    missing = [cid for cid in sec.ref_ids + sec.test_ids if cid not in far_of]
    if missing:
        raise ScoringInputError(f"{sec.name}: {len(missing)} clip(s) have no {spec.noise_reference} embedding "
                                f"(e.g. {missing[0]}); run `asd embed --channel {spec.noise_reference}`")
    far_refs = far_all[[far_of[c] for c in sec.ref_ids]]
    far_tests = far_all[[far_of[c] for c in sec.test_ids]] if sec.test_ids else far_all[:0]
    try:
        model = NoiseReference().fit(far_refs, sec.refs)
        sec.refs = model.residual(far_refs, sec.refs).astype(np.float32)
        if sec.test_ids:
            sec.tests = model.residual(far_tests, sec.tests).astype(np.float32)
    except NoiseReferenceError as exc:
        raise ScoringInputError(f"{sec.name}: {exc}") from None
    sec.variant = spec.variants()[0]
    sec.conditioner = model
    fit = model.summary()
    return {k: fit[k] for k in ("alpha", "effective_dof", "n", "rank")}


def noise_reference_file(ws: Workspace, encoder: str, version: str, sec: SectionInput) -> Path:
    """Where the fitted ridge of a noise-reference section is kept (beside its indexes; bundled with
    a registered model, registry.py)."""
    return index_section_root(ws, encoder, version, sec.dataset, sec.machine_type, sec.section) / f"{sec.variant}.npz"


def save_noise_reference(path: Path, model: NoiseReference) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **model.to_arrays())


def load_noise_reference(path: Path) -> NoiseReference:
    with np.load(path) as arrays:
        return NoiseReference.from_arrays(arrays)


def score_channel_section(ws: Workspace, encoder: str, version: str, group: list[SectionInput], cfg,
                          spec: ChannelSpec) -> SectionResult:
    """Score one section of every channel and fuse (one channel: its result as it is)."""
    results = [score_section(ws, encoder, version, sec, cfg) for sec in group]
    if len(results) == 1:
        return results[0]
    quantile = getattr(cfg, "config", cfg).threshold_quantile
    return fuse(results, spec.fusion, quantile)


def fuse_scores(per_channel, fusion: str | None) -> np.ndarray:
    """Late fusion over the first axis (channels): max for ``max``, else the mean (one channel: itself)."""
    return (np.max if fusion == "max" else np.mean)(np.asarray(per_channel, dtype=np.float64), axis=0)


def fuse(results: list[SectionResult], how: str, quantile: float) -> SectionResult:
    """Late fusion of per-channel results of one section (same clips, same order): scores and the
    references' leave-one-out scores combined by ``how``, the threshold their ``quantile``."""
    scores = fuse_scores([r.scores for r in results], how)
    refs = fuse_scores([r.reference_scores for r in results], how)
    choice = {f"channel {i}": r.choice for i, r in enumerate(results) if r.choice is not None} or None
    return replace(results[0], scores=scores, threshold=float(np.quantile(refs, quantile)), reference_scores=refs,
                   index_reused=all(r.index_reused for r in results), choice=choice)
