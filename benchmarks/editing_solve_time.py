"""AlphaEdit's closed form against MEMIT's on the same batch, at course and larger key widths.

    python benchmarks/editing_solve_time.py

Both solve one ``d × d`` system per layer in float64 (AlphaEdit Eq. 14 in the official solve form,
MEMIT Eq. 15). AlphaEdit's projector is built once before timing and its cache is kept as
``P Kp Kpᵀ``, as :class:`~nullspace.editing.methods.alphaedit.AlphaEditEditor` does, so the extra work per
batch is ``O(d² u)``. Prints the median of 9 runs on one thread.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from nullspace.editing.methods.alphaedit import alphaedit_update
from nullspace.editing.methods.memit import memit_update
from nullspace.linalg import AbsoluteRule, null_space


def main() -> int:
    torch.set_num_threads(1)
    for dim, edits in ((1024, 25), (2048, 50)):
        g = torch.Generator().manual_seed(0)
        corpus = torch.randn(4 * dim, dim, generator=g, dtype=torch.float64) * torch.linspace(
            1, 0.01, dim, dtype=torch.float64)
        c0 = corpus.T @ corpus / len(corpus)
        projector = null_space(c0, AbsoluteRule(1e-2)).projector()
        keys = torch.randn(edits, dim, generator=g, dtype=torch.float64)
        residuals = torch.randn(edits, 128, generator=g, dtype=torch.float64)
        earlier = torch.randn(4 * edits, dim, generator=g, dtype=torch.float64)
        cache = earlier.T @ earlier
        projected_cache = projector @ cache
        memit, alpha = [], []
        for _ in range(9):
            start = time.perf_counter()
            memit_update(keys, residuals, c0, covariance_weight=1e3, edited_covariance=cache)
            memit.append(time.perf_counter() - start)
            start = time.perf_counter()
            alphaedit_update(keys, residuals, projector, l2_weight=10.0, projected_edited_covariance=projected_cache)
            alpha.append(time.perf_counter() - start)
        m, a = statistics.median(memit), statistics.median(alpha)
        print(f"d = {dim}, {edits} edits: MEMIT {m:.3f} s, AlphaEdit {a:.3f} s, ratio {a / m:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
