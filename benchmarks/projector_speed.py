"""The null-space projector at GPT-2 XL's d = 6400: the official path against the package's, in one run.

    python benchmarks/projector_speed.py [--dim 6400] [--range-rank 0] [--json FILE]

The official AlphaEdit code takes a float32 SVD of ``C0`` and forms ``P = U2 U2ᵀ`` from the
singular vectors whose singular values are below 2e-2. The package
(:func:`nullspace.projector.fast_projector`) reduces ``C0`` to tridiagonal form in float32, takes
every eigenvalue and the eigenvectors of the thinner side only (LAPACK through scipy), keeps that factor and forms ``P`` as ``U2 U2ᵀ`` or ``I − U1 U1ᵀ``, whichever is
cheaper. ``C0`` is a synthetic covariance with a decaying spectrum (eigenvalues log-spaced from
1e2 to 1e-6, so about half fall below 2e-2), or with ``--range-rank r`` one of rank ``r`` (the null
side far larger than the range). Both are compared with a float64 reference (``scipy`` ``syevd`` in
float64): printed are both timings (one thread, CPU seconds of this process as well as wall-clock
seconds, since the machine may be shared), their ratio, ``max |ΔP|`` of each against the
reference and against each other, and the null dimensions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from nullspace.linalg import AbsoluteRule
from nullspace.projector import fast_projector

THRESHOLD = 2e-2


def synthetic_covariance(dim: int, range_rank: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if range_rank:
        x = rng.standard_normal((range_rank, dim)) * np.sqrt(dim / range_rank)
        return x.T @ x / range_rank
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    c = (q * np.logspace(2, -6, dim)) @ q.T
    return (c + c.T) / 2


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def official_projector(c0: np.ndarray) -> tuple[torch.Tensor, int]:
    """AlphaEdit's code: float32 SVD of C0, P from the singular vectors below the threshold."""
    u, s, _ = torch.linalg.svd(torch.from_numpy(c0.astype(np.float32)), full_matrices=False)
    small = s < THRESHOLD
    u2 = u[:, small]
    return u2 @ u2.T, int(small.sum())


def reference_projector(c0: np.ndarray) -> tuple[np.ndarray, int]:
    values, vectors = scipy.linalg.eigh(c0, driver="evd")
    small = np.abs(values) < THRESHOLD
    return vectors[:, small] @ vectors[:, small].T, int(small.sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=6400)
    parser.add_argument("--range-rank", type=int, default=0, help="0: decaying full-rank spectrum")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    c0 = synthetic_covariance(args.dim, args.range_rank)
    print(f"d = {args.dim}, {'decaying spectrum' if not args.range_rank else f'rank {args.range_rank}'}, "
          f"threshold {THRESHOLD:g}, one thread", flush=True)

    (p_official, null_official), wall_official, cpu_official = timed(lambda: official_projector(c0))
    print(f"official (float32 SVD, U2 U2ᵀ): {wall_official:7.1f} s wall, {cpu_official:7.1f} s CPU", flush=True)
    projector, wall_factor, cpu_factor = timed(lambda: fast_projector(torch.from_numpy(c0), AbsoluteRule(THRESHOLD)))
    p_package, wall_dense, cpu_dense = timed(projector.dense)
    wall_package, cpu_package = wall_factor + wall_dense, cpu_factor + cpu_dense
    form = "U2 U2ᵀ" if projector.factor_is_null_basis else "I − U1 U1ᵀ"
    print(f"package  (float32, kept side, {form}): {wall_package:7.1f} s wall, {cpu_package:7.1f} s CPU "
          f"(decomposition and kept factor, all the editor uses: {cpu_factor:.1f} s CPU; dense P: "
          f"{cpu_dense:.1f} s CPU)", flush=True)
    p_reference, null_reference = reference_projector(c0)

    def gap(a, b) -> float:
        return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())

    figures = {
        "dim": args.dim, "range_rank": args.range_rank,
        "official_wall_s": wall_official, "official_cpu_s": cpu_official,
        "package_wall_s": wall_package, "package_cpu_s": cpu_package, "package_factor_cpu_s": cpu_factor,
        "speedup_cpu": cpu_official / cpu_package, "speedup_wall": wall_official / wall_package,
        "speedup_cpu_factor_only": cpu_official / cpu_factor,
        "null_dim_official": null_official, "null_dim_package": projector.null_dim,
        "null_dim_float64": null_reference,
        "max_abs_dP_official_vs_float64": gap(p_official, p_reference),
        "max_abs_dP_package_vs_float64": gap(p_package, p_reference),
        "max_abs_dP_package_vs_official": gap(p_package, p_official),
        "package_factor_MiB": projector.nbytes / 2**20,
    }
    print(f"speed-up: {figures['speedup_cpu']:.2f}× (CPU time, both forming dense P), {figures['speedup_wall']:.2f}× "
          f"(wall); {figures['speedup_cpu_factor_only']:.2f}× (CPU) for what the editor uses (no dense P)")
    print(f"null dimensions: official {null_official}, package {projector.null_dim}, float64 {null_reference}")
    print(f"max |ΔP|: official vs float64 {figures['max_abs_dP_official_vs_float64']:.2e}, package vs float64 "
          f"{figures['max_abs_dP_package_vs_float64']:.2e}, package vs official "
          f"{figures['max_abs_dP_package_vs_official']:.2e}")
    print(f"package keeps {form.split()[0] if projector.factor_is_null_basis else 'U1'}: "
          f"{tuple(projector.factor.shape)} float32, {figures['package_factor_MiB']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
