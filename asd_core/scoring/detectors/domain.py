"""Domain standardisation (as in GenRep, methods.md section 2): nearest distance among source and
among target references, each z-scored with the mean and std over the section's *test* clips,
the minimum of the two. Transductive: ``fit`` takes the test clips explicitly."""

from __future__ import annotations

import numpy as np

from asd_core.scoring.detectors.base import BaseDetector
from asd_core.scoring.distances import ScoringInputError, check_embeddings
from asd_core.scoring.search import build_index


class DomainStandardize(BaseDetector):
    transductive = True

    def _fit(self, refs, domains, test) -> None:
        if domains is None:
            raise ScoringInputError("normalization 'domain-standardize' needs the domain of each reference")
        if test is None:
            raise ScoringInputError("normalization 'domain-standardize' is transductive: fit it with the test clips (test=...)")
        self._domain_index = {}
        for d in ("source", "target"):
            sel = np.flatnonzero(domains == d)
            if sel.size == 0:
                raise ScoringInputError(f"normalization 'domain-standardize' needs {d} references; the section has none")
            self._domain_index[d] = (build_index(refs[sel], np.ones(sel.size), self.config.metric, "plain"), sel)
        parts = self._parts(check_embeddings(test, "test embeddings", self.dim_))
        self.test_stats_ = {d: (s.mean(), s.std() + 1e-12) for d, s in parts.items()}

    def _parts(self, x, exclude=False):
        out = {}
        for d, (idx, sel) in self._domain_index.items():
            own = None
            if exclude:
                own = np.full(x.shape[0], -1)
                own[sel] = np.arange(sel.size)
            out[d] = idx.search(x, 1, exclude=own)[0][:, 0]
        return out

    def _standardized(self, parts):
        return np.minimum(*[(parts[d] - m) / sd for d, (m, sd) in self.test_stats_.items()])

    def _score(self, x):
        return self._standardized(self._parts(x))

    def reference_scores(self):
        return self._standardized(self._parts(self.references_, exclude=True))
