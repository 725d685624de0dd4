"""Refit one section of a model bundle on its references + enrolled clips (methods.md section 2).

:func:`refit_section` refits one index folder: rho of every reference and the threshold, exact as
in a scoring run. :func:`refit_model_section` refits a section of a whole bundle, one index folder
per scored channel through that same function:

- a model of one channel (the primary waveform, or ``asd score --channel far``): its index, the
  enrolled clips' embeddings of that channel added;
- fused channels (``--channels near,far --fusion mean|max``): every channel's index, each with the
  clips' embeddings of its channel (appended in the same order, so reference ``j`` is one clip in
  every channel), and the section threshold recomputed as the scoring run does: the
  ``threshold_quantile`` of the references' fused leave-one-out scores;
- a noise reference (``--noise-reference far``): the section's ridge is kept as it is (the bundle
  holds no raw near / far embeddings of the references to refit it on), the enrolled clips' ridge
  residuals join the residual index, and the ridge file stays beside the refitted index.

A channel model's thresholds live in ``channels.json`` (a fused threshold is no channel's own);
the refitted bundle's copy records the new one.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asd_core.enrollment.clips import EnrollmentError
from asd_core.scoring import index_store
from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.detector import make_detector
from asd_core.scoring.distances import ScoringInputError
from asd_core.tracking.channel_bundle import RIDGE_FILE, BundleChannels, fuse_scores, section_key

# files of a bundled section folder that are not the index itself and stay with it when it is refitted
COMPANIONS = (RIDGE_FILE,)


@dataclass
class SectionRefit:
    """One index folder refitted. ``reference_scores``: the leave-one-out scores of the new reference
    set in stored order (only when asked for: a fused threshold needs them)."""
    config: ScoringConfig
    references_before: int
    references_after: int
    threshold_before: float
    threshold_after: float
    seconds: float
    reference_scores: np.ndarray | None = None


def refit_section(parent: Path, out: Path, vectors: np.ndarray, ids: list[str], domain: str,
                  keep_reference_scores: bool = False) -> SectionRefit:
    """Write into ``out`` the index folder of ``parent`` refitted on its references + ``vectors``.

    Every reference's rho is recomputed (one exact leave-one-out search over the section: cheap at
    the sizes of a section, and simpler to trust than patching the neighbours that changed). The
    new vectors come after the parent's references, in the order given."""
    manifest = json.loads((parent / "manifest.json").read_text())
    refs_file = parent / "references.npy"
    if not refs_file.exists():
        raise EnrollmentError(f"{parent}: this model version predates stored references (index version "
                              f"{manifest.get('version')}); register its run again, then enroll into the new version")
    refs = index_store.load_array(refs_file)
    if vectors.shape[1] != refs.shape[1]:
        raise EnrollmentError(f"{parent}: the encoder gives {vectors.shape[1]}-d vectors, the section's references are "
                              f"{refs.shape[1]}-d")
    cfg = ScoringConfig(**manifest["config"])
    start = time.perf_counter()
    try:
        det = make_detector(cfg).fit(np.concatenate([refs, np.asarray(vectors, refs.dtype)]))
        ref_scores = det.reference_scores() if keep_reference_scores else None
    except ScoringInputError as exc:
        raise EnrollmentError(f"{parent}: cannot refit the section: {exc}") from None
    seconds = time.perf_counter() - start
    counts = dict(manifest.get("counts") or {})
    enrolled = dict(counts.get("enrolled") or {})
    enrolled[domain] = enrolled.get(domain, 0) + len(ids)
    counts.update(references=det.n_references_, enrolled=enrolled)
    # what the references are: the parent's (by their content hash) and the enrolled clips
    input_hash = index_store.content_hash([f"parent:{manifest.get('input_hash')}", *ids], det.index_.refs)
    index_store.save(out, det, det.threshold_, input_hash, counts)
    for name in COMPANIONS:  # save() swaps in a fresh folder: what else the section held comes back
        if (parent / name).exists():
            shutil.copy2(parent / name, out / name)
    return SectionRefit(cfg, refs.shape[0], det.n_references_, float(manifest["threshold"]), float(det.threshold_),
                        seconds, ref_scores)


@dataclass
class ModelRefit:
    """A section of a bundle refitted: one SectionRefit per scored channel (bundle order) and the
    model's section threshold before and after (a channel model's from ``channels.json``)."""
    channels: list[SectionRefit]
    threshold_before: float
    threshold_after: float

    @property
    def config(self) -> ScoringConfig:
        return self.channels[0].config

    @property
    def references_before(self) -> int:
        return self.channels[0].references_before

    @property
    def references_after(self) -> int:
        return self.channels[0].references_after

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.channels)


def refit_model_section(parent: Path, out: Path, key: tuple[str, str, str], channels: BundleChannels | None,
                        inputs: list[np.ndarray], ids: list[str], domain: str) -> ModelRefit:
    """Refit section ``key`` (dataset, machine_type, section) of the bundle ``parent`` into ``out`` (a
    copy of it): ``inputs`` are the enrolled clips' vectors each channel's detector holds, in the
    bundle's channel order (``MonitorModel.inputs``: the ridge residual under a noise reference)."""
    roles = channels.channels if channels else [None]
    if len(inputs) != len(roles):
        raise ValueError(f"{len(inputs)} input arrays for the {len(roles)} channel(s) of the bundle")
    rel = Path("indexes", key[0], key[1], f"section_{key[2]}")
    fused = len(roles) > 1
    refits = []
    for role, x in zip(roles, inputs):
        root_in, root_out = (parent, out) if role is None else (channels.index_root(parent, role), channels.index_root(out, role))
        refits.append(refit_section(root_in / rel, root_out / rel, x, ids, domain, keep_reference_scores=fused))
    if channels is None:
        return ModelRefit(refits, refits[0].threshold_before, refits[0].threshold_after)
    name = section_key(*key)
    before = float(channels.thresholds.get(name, refits[0].threshold_before))
    if fused:
        loo = fuse_scores([r.reference_scores for r in refits], channels.fusion)
        after = float(np.quantile(loo, refits[0].config.threshold_quantile))
    else:
        after = refits[0].threshold_after
    BundleChannels(channels.channels, channels.fusion, channels.noise_reference,
                   {**channels.thresholds, name: after}).write(out)
    return ModelRefit(refits, before, after)
