"""Plausible wrong solutions, one table per lesson: exercise → {the mistake: the wrong code}.

Each is a mistake a learner makes (or a sloppy solution that passes a weak check); the test in
test_exercise_mistakes.py proves the exercise's check rejects it. A mistake is either the whole
exercise cell or a :class:`Change` of the solution (one piece of it replaced), which shows the
mistake as a difference.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    """The solution with ``old`` replaced by ``new`` (``old`` must occur in it exactly once)."""

    old: str
    new: str

    def apply(self, solution: str) -> str:
        assert solution.count(self.old) == 1, f"{self.old!r} occurs {solution.count(self.old)} times in the solution"
        return solution.replace(self.old, self.new)


LESSON_1 = {
    "1.1": {
        "reduced SVD (misses the null space when n < d)": '''
def right_null_space(X, tol=1e-10):
    _, s, vh = torch.linalg.svd(X, full_matrices=False)
    rank = int((s > tol * s.max()).sum())
    return vh[rank:].T
''',
        "absolute instead of relative cut": '''
def right_null_space(X, tol=1e-10):
    _, s, vh = torch.linalg.svd(X, full_matrices=True)
    rank = int((s > tol).sum())
    return vh[rank:].T
''',
        "rows instead of columns": '''
def right_null_space(X, tol=1e-10):
    _, s, vh = torch.linalg.svd(X, full_matrices=True)
    rank = int((s > tol * s.max()).sum())
    return vh[rank:]
''',
    },
    "1.2": {
        "mean of the batches' covariances": '''
def streaming_covariance(batches):
    covs = [b.double().T @ b.double() / len(b) for b in batches]
    return sum(covs) / len(covs)
''',
        "accumulated in float32": '''
def streaming_covariance(batches):
    total, count = 0, 0
    for b in batches:
        total = total + b.T @ b
        count += len(b)
    return (total / count).double()
''',
    },
    "1.3": {
        "projector onto the range (large eigenvalues kept)": '''
def projector_from_covariance(covariance, threshold):
    values, vectors = torch.linalg.eigh(covariance.double())
    u = vectors[:, values.abs() >= threshold]
    return u @ u.T
''',
        "U2ᵀU2 instead of U2U2ᵀ": '''
def projector_from_covariance(covariance, threshold):
    values, vectors = torch.linalg.eigh(covariance.double())
    u2 = vectors[:, values.abs() < threshold]
    return u2.T @ u2
''',
    },
    "1.4": {
        "absolute instead of relative cut": '''
def protect_update(X_old, delta, rel_tol):
    values, vectors = torch.linalg.eigh(X_old.T @ X_old / len(X_old))
    u2 = vectors[:, values.abs() <= rel_tol]
    return delta @ u2 @ u2.T
''',
        "projected onto the old inputs' span": '''
def protect_update(X_old, delta, rel_tol):
    values, vectors = torch.linalg.eigh(X_old.T @ X_old / len(X_old))
    u1 = vectors[:, values.abs() > rel_tol * values.abs().max()]
    return delta @ u1 @ u1.T
''',
    },
    "1.5": {
        "one eigenvalue too few kept": '''
def energy_null_dim(eigenvalues, fraction):
    cumulative = torch.cumsum(eigenvalues.flip(0), 0) / eigenvalues.sum()
    return eigenvalues.numel() - int((cumulative < fraction).sum())
''',
        "eigenvalues taken as descending": '''
def energy_null_dim(eigenvalues, fraction):
    cumulative = torch.cumsum(eigenvalues, 0) / eigenvalues.sum()
    kept = int((cumulative < fraction - 1e-12).sum()) + 1
    return max(eigenvalues.numel() - kept, 0)
''',
    },
}

LESSON_2 = {
    "2.1": {
        "patches flattened without moving C·k·k last": Change(
            "return patches.transpose(1, 2).reshape(-1, patches.shape[1])",
            "return patches.reshape(-1, patches.shape[1])"),
        "stride and dilation ignored": Change(
            "F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer.padding,\n"
            "                           stride=layer.stride)",
            "F.unfold(x, layer.kernel_size, padding=layer.padding)"),
        "a Linear layer's inputs left unflattened": Change(
            "return x.reshape(-1, layer.in_features)", "return x"),
    },
    "2.2": {
        "hooks never removed": Change("            handle.remove()\n", "            pass\n"),
        "accumulated in float32": Change(
            "rows = layer_input_rows(module, inputs[0].detach()).to(torch.float64)\n            outer = rows.T @ rows",
            "rows = layer_input_rows(module, inputs[0].detach())\n            outer = (rows.T @ rows).double()"),
        "divided by the number of images, not of rows": Change(
            "self.counts[name] += rows.shape[0]", "self.counts[name] += inputs[0].shape[0]"),
        "inputs not detached": Change("inputs[0].detach()", "inputs[0]"),
        "sums restarted at every `with` (not Eq. 4)": Change(
            "        for name, layer in self.layers.items():\n            hook",
            "        self.sums, self.counts = {}, dict.fromkeys(self.layers, 0)\n"
            "        for name, layer in self.layers.items():\n            hook"),
        "exceptions swallowed": Change("        self.handles = []\n        ### END", "        self.handles = []\n        return True\n        ### END"),
    },
    "2.3": {
        "projected onto the protected directions": Change(
            "projected = gradient - (gradient @ basis) @ basis.T", "projected = (gradient @ basis) @ basis.T"),
        "only the protected weights step": Change(
            "            if parameter.grad is not None:", "            if parameter in steps:"),
        "conv gradient not viewed as (out, d)": Change(
            "gradient = weight.grad.reshape(weight.shape[0], -1).to(torch.float64)",
            "gradient = weight.grad.to(torch.float64)"),
    },
}

MISTAKES = {**LESSON_1, **LESSON_2}
