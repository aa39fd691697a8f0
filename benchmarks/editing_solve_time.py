"""AlphaEdit's closed form against MEMIT's on the same batch, like for like, and the crossover of
AlphaEdit's two forms.

    OMP_NUM_THREADS=1 python benchmarks/editing_solve_time.py [--dim 6400] [--crossover-dim 1024]

Per layer, one batch of ``u = 100`` new keys after ``N_p`` earlier edited keys (GPT-2 XL's
d_ff = 6400 by default; residuals of width 1600):

* MEMIT (Eq. 15): ``λ C0 + K1 K1ᵀ + Kp Kpᵀ`` formed and solved by Cholesky (its LU succeeds: no
  ``pinv``), with the cache ``Kp Kpᵀ`` kept as a ``d × d`` matrix as the official code does;
* AlphaEdit (Eq. 14), push-through form as the editor runs it: the ``N × N`` system with
  ``N = u + N_p``, the earlier keys' projections and Gram matrix kept from earlier batches, the
  projector kept as its thinner float32 factor (``nullspace.projector``);
* AlphaEdit, the official ``d × d`` form with ``P Kp Kpᵀ`` kept up to date.

``P`` projects out 256 random directions (kept as that 256-column factor; a projector of GPT-2 XL's
C0 keeps at most 3200 columns, and the d × d forms' cost does not depend on it). Times are CPU
seconds of this process (one thread; the machine may be shared), the median of ``--repeats`` runs.
Then, at ``--crossover-dim``, ``N_p`` is swept to find where the ``d × d`` form becomes cheaper
than the push-through form (the editor switches at ``N ≥ PUSH_THROUGH_LIMIT · d``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from nullspace.editing.methods.alphaedit import alphaedit_update, alphaedit_with_earlier
from nullspace.editing.methods.memit import memit_update
from nullspace.projector import NullProjector


def cpu_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def problem(dim: int, earlier: int, u: int = 100, d_out: int = 1600, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, min(256, dim // 4), generator=g, dtype=torch.float64))
    projector = NullProjector(torch.ones(dim), dim - basis.shape[1], basis.float(), False, "256 directions protected")
    factor = torch.randn(dim, 256, generator=g, dtype=torch.float64)
    c0 = factor @ factor.T / 256
    c0.diagonal().add_(1e-2)
    keys = torch.randn(u, dim, generator=g, dtype=torch.float64)
    residuals = torch.randn(u, d_out, generator=g, dtype=torch.float64)
    kp = torch.randn(earlier, dim, generator=g, dtype=torch.float64)
    return projector, c0, keys, residuals, kp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=6400)
    parser.add_argument("--earlier", type=int, nargs="+", default=[0, 1900])
    parser.add_argument("--crossover-dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"one thread; CPU seconds per layer, median of {args.repeats}; u = 100 new keys", flush=True)
    for earlier in args.earlier:
        projector, c0, keys, residuals, kp = problem(args.dim, earlier)
        cache = kp.T @ kp
        projected_kp = projector.project(kp).double()
        projected_cache = projected_kp.T @ kp  # P Kp Kpᵀ (P symmetric)
        gram = projected_kp @ kp.T
        memit = cpu_seconds(lambda: memit_update(keys, residuals, c0, covariance_weight=2e4, edited_covariance=cache),
                            args.repeats)
        pushed = cpu_seconds(lambda: alphaedit_with_earlier(keys, residuals, projector, 10.0, kp if earlier else None,
                                                            projected_kp, gram), args.repeats)
        square = cpu_seconds(lambda: alphaedit_update(keys, residuals, projector, l2_weight=10.0,
                                                      projected_edited_covariance=projected_cache), args.repeats)
        print(f"d = {args.dim}, N_p = {earlier}: MEMIT {memit:.2f} s; AlphaEdit push-through {pushed:.3f} s "
              f"({pushed / memit:.3f}× MEMIT), d×d form {square:.2f} s ({square / memit:.2f}× MEMIT)", flush=True)
    dim = args.crossover_dim
    print(f"crossover at d = {dim}:", flush=True)
    for fraction in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5):
        earlier = max(0, int(fraction * dim) - 100)
        projector, _, keys, residuals, kp = problem(dim, earlier)
        projected_kp = projector.project(kp).double()
        projected_cache = projected_kp.T @ kp
        gram = projected_kp @ kp.T
        pushed = cpu_seconds(lambda: alphaedit_with_earlier(keys, residuals, projector, 10.0, kp, projected_kp, gram),
                             args.repeats)
        square = cpu_seconds(lambda: alphaedit_update(keys, residuals, projector, l2_weight=10.0,
                                                      projected_edited_covariance=projected_cache), args.repeats)
        print(f"  N = {fraction:.2f}·d: push-through {pushed:.3f} s, d×d form {square:.3f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
