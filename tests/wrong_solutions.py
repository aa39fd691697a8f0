"""Plausible wrong solutions, one table per lesson: exercise → {the mistake: the cell's code}.

Each is a mistake a learner makes (or a sloppy solution that passes a weak check); the test in
test_exercise_mistakes.py proves the exercise's check rejects it.
"""

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

MISTAKES = {**LESSON_1}
