"""The linear associative memory: AlphaEdit keeps preserved pairs exact when an exact null space
exists; MEMIT's solve is singular there and its weights blow up."""

import pytest
import torch

from nullspace.editing.methods.alphaedit import alphaedit_update
from nullspace.editing.associative_memory import (
    build_memory,
    edit_sequentially,
    relative_error,
    sample_keys,
)
from nullspace.editing.methods.memit import memit_update
from nullspace.linalg import RelativeRule, null_space


def confined_setup():
    g = torch.Generator().manual_seed(0)
    keys = sample_keys(600 + 15, 64, "confined", g, rank=32)
    preserved, new = keys[:600], keys[600:] + 0.3 * torch.randn(15, 64, generator=g, dtype=torch.float64)
    memory = build_memory(preserved, 16, g)
    values = torch.randn(15, 16, generator=g, dtype=torch.float64)
    return memory, new, values


def test_alphaedit_keeps_preserved_pairs_exact_on_confined_keys():
    memory, new, values = confined_setup()
    projector = null_space(memory.key_covariance, RelativeRule(1e-8)).projector()
    trace = edit_sequentially(memory, new, values, 5,
                              lambda k, r, cp: alphaedit_update(k, r, projector, l2_weight=1e-2,
                                                                edited_covariance=cp))
    assert max(trace.preserved_error) < 1e-10
    assert trace.edited_error[-1] < 0.05


def test_memit_fits_edits_but_preserved_error_grows():
    memory, new, values = confined_setup()
    c0 = memory.key_covariance
    trace = edit_sequentially(memory, new, values, 5,
                              lambda k, r, cp: memit_update(k, r, c0, covariance_weight=1.0,
                                                            edited_covariance=cp))
    assert trace.edited_error[-1] < 0.05
    assert trace.preserved_error[-1] > 10 * trace.preserved_error[0]


def test_overlapping_keys_cannot_be_edited_without_damage():
    g = torch.Generator().manual_seed(3)
    basis = torch.linalg.qr(torch.randn(64, 32, generator=g, dtype=torch.float64))[0]
    memory = build_memory(sample_keys(600, 64, "confined", g, basis=basis, rank=32), 16, g)
    new = sample_keys(20, 64, "confined", g, basis=basis, rank=32)  # same subspace: no room
    values = torch.randn(20, 16, generator=g, dtype=torch.float64)
    projector = null_space(memory.key_covariance, RelativeRule(1e-8)).projector()
    alpha = edit_sequentially(memory, new, values, 5,
                              lambda k, r, cp: alphaedit_update(k, r, projector, edited_covariance=cp))
    assert relative_error(alpha.weight, new, values) == pytest.approx(
        relative_error(memory.weight, new, values), rel=1e-6)  # AlphaEdit refuses to move
    memit = edit_sequentially(memory, new, values, 5,
                              lambda k, r, cp: memit_update(k, r, memory.key_covariance,
                                                            covariance_weight=1.0, edited_covariance=cp))
    assert memit.preserved_error[-1] > 0.1  # MEMIT edits by overwriting preserved pairs


@pytest.mark.bad_input
def test_sample_keys_geometry_and_errors():
    g = torch.Generator().manual_seed(0)
    assert torch.linalg.matrix_rank(sample_keys(100, 20, "confined", g, rank=5)) == 5
    assert torch.linalg.matrix_rank(sample_keys(100, 20, "spanning", g)) == 20
    with pytest.raises(ValueError, match="unknown key geometry"):
        sample_keys(10, 5, "round", g)
