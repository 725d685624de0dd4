"""Parameter grids and the label-free choice of K or r (methods.md section 2).

A grid expands normalizations x K x r into distinct runs: a run's parameters are only those its
normalization uses, so ``knn`` over an r list is one run per K. ``auto`` chooses K (or r) per
section without anomaly labels. LDN's aim is that the normal clips of every domain land on one
score scale, so that one threshold serves all of them; the criterion measures exactly that on
the section's normal reference clips: with their leave-one-out scores s (the scores the
threshold is taken from), the gap between the source and target upper quantiles,

    gap = |Q_q(s_source) - Q_q(s_target)| / (Q_q(s) - Q_(1-q)(s)),

q the threshold quantile. Dividing by the pooled spread makes it free of each candidate's
scale (ratio and subtractive scores alike), so candidates compare; the smallest gap wins, ties
to the earlier candidate. A section whose references lack a domain keeps the default value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.distances import ScoringInputError

AUTO = "auto"
AUTO_CANDIDATES = {"k": (1, 2, 4, 8, 16), "r": (0.0, 0.5, 0.75, 0.9, 0.99)}
DEFAULTS = {f.name: f.default for f in fields(ScoringConfig)}


def uses(normalization: str, param: str) -> bool:
    """Whether ``normalization`` has parameter ``param`` (k or r)."""
    if param == "k":
        return normalization.startswith("knn") or normalization == "lof"
    return normalization.startswith("gwrp")


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: a scoring config, or with ``auto`` ("k" / "r") a choice per section."""

    config: ScoringConfig
    auto: str | None = None

    def params(self) -> dict:
        p = self.config.params()
        if self.auto:
            p[self.auto] = AUTO
        return p

    def label(self) -> str:
        """``knn k=4``, ``gwrp r=auto``: how a run is named side by side."""
        shown = {k: v for k, v in self.params().items() if k in ("k", "r")}
        return " ".join([self.config.normalization, *(f"{k}={v}" for k, v in shown.items())])

    def candidates(self) -> list[ScoringConfig]:
        """The configs an ``auto`` run chooses among (a fixed run: its own config)."""
        if not self.auto:
            return [self.config]
        return [replace(self.config, **{self.auto: v}) for v in AUTO_CANDIDATES[self.auto]]


def parse_values(values, param: str) -> tuple:
    """``1,2,auto`` / ``[1, 2]`` / ``4`` -> a tuple of numbers and ``auto``; a clear error otherwise."""
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    elif not isinstance(values, (list, tuple)):
        values = [values]
    if not values:
        raise ScoringInputError(f"--{param}: no values given")
    out = []
    for v in values:
        if v == AUTO:
            out.append(AUTO)
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ScoringInputError(f"--{param}: {v!r} is not a number or 'auto'") from None
        if param == "k" and not x.is_integer():
            raise ScoringInputError(f"--{param}: {v!r} is not an integer")
        out.append(int(x) if param == "k" else x)
    return tuple(dict.fromkeys(out))


def expand(normalizations, ks=(DEFAULTS["k"],), rs=(DEFAULTS["r"],), **common) -> list[RunSpec]:
    """Every distinct run of normalizations x K x r (``common``: the other ScoringConfig fields).
    Each config is validated by ScoringConfig itself; an ``auto`` run validates its candidates."""
    specs: dict[tuple, RunSpec] = {}
    for norm in normalizations:
        for k in ks if uses(norm, "k") else (DEFAULTS["k"],):
            for r in rs if uses(norm, "r") else (DEFAULTS["r"],):
                auto = "k" if k == AUTO else "r" if r == AUTO else None
                cfg = ScoringConfig(normalization=norm, k=DEFAULTS["k"] if k == AUTO else k,
                                    r=DEFAULTS["r"] if r == AUTO else r, **common)
                spec = RunSpec(cfg, auto)
                spec.candidates()  # each candidate is a valid config
                specs.setdefault((norm, tuple(sorted(spec.params().items(), key=str))), spec)
    return list(specs.values())


def domain_gap(scores: np.ndarray, domains, quantile: float) -> float | None:
    """The criterion above for one candidate; None when a domain has no reference."""
    scores = np.asarray(scores, np.float64)
    domains = np.asarray(domains, dtype=object)
    src, tgt = scores[domains == "source"], scores[domains == "target"]
    if len(src) == 0 or len(tgt) == 0:
        return None
    spread = np.quantile(scores, quantile) - np.quantile(scores, 1 - quantile)
    gap = abs(np.quantile(src, quantile) - np.quantile(tgt, quantile))
    return float(gap / spread) if spread > 0 else (0.0 if gap == 0 else float("inf"))


def choose(gaps: list[float | None]) -> int | None:
    """Index of the smallest gap (the first on ties); None when no candidate has one."""
    known = [(g, i) for i, g in enumerate(gaps) if g is not None]
    return min(known)[1] if known else None
