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
        "the change of the norm, not the norm of the change": Change(
            "return float(torch.linalg.norm(rows @ change.T) / torch.linalg.norm(rows @ weight.T))",
            "return float((torch.linalg.norm(rows @ (weight + change).T) - torch.linalg.norm(rows @ weight.T))"
            " / torch.linalg.norm(rows @ weight.T))"),
        "relative to the size of the weight, not of the outputs": Change(
            "/ torch.linalg.norm(rows @ weight.T))", "/ torch.linalg.norm(weight))"),
    },
    "2.4": {
        "projected onto the protected directions": Change(
            "projected = gradient - (gradient @ basis) @ basis.T", "projected = (gradient @ basis) @ basis.T"),
        "only the protected weights step": Change(
            "            if parameter.grad is None:", "            if parameter not in gradients:"),
        "conv gradient not viewed as (out, d)": Change(
            "gradient = weight.grad.reshape(weight.shape[0], -1).to(torch.float64)",
            "gradient = weight.grad.to(torch.float64)"),
        "the gradient itself stored as the buffer": Change(
            "buffers[parameter] = gradient.clone()", "buffers[parameter] = gradient"),
        "momentum applied to the raw gradient (buffer leaves the null space)": Change(
            "gradient = gradients.get(parameter, parameter.grad)", "gradient = parameter.grad"),
    },
}

LESSON_5 = {
    "5.1": {
        "the MLP reads h instead of h + a": Change(
            "key = block.mlp.act(block.mlp.c_fc(block.ln_2(middle)))",
            "key = block.mlp.act(block.mlp.c_fc(block.ln_2(hidden)))"),
        "the attention's residual dropped from the output": Change(
            "return middle + value, key, value", "return hidden + value, key, value"),
        "the value without c_proj's bias": Change(
            "value = block.mlp.c_proj(key)", "value = key @ block.mlp.c_proj.weight"),
    },
    "5.2": {
        "every position restored": Change("states[1:, position] = states[0, position]", "states[1:] = states[0]"),
        "log-probabilities instead of probabilities": Change("torch.softmax(", "torch.log_softmax("),
        "the answer read after the subject, not after the last token": Change(
            "model(input_ids=batch).logits[:, -1]", "model(input_ids=batch).logits[:, subject_positions[-1]]"),
        "hooks never removed": Change(
            "            for handle in handles:\n                handle.remove()\n", "            pass\n"),
    },
    "5.3": {
        "squared singular values (eigenvalues of KᵀK)": Change(
            "singular = torch.linalg.svdvals(rows.double())", "singular = torch.linalg.svdvals(rows.double()) ** 2"),
        "zero singular values kept (0 · log 0 = nan)": Change("    p = p[p > 0]\n", ""),
    },
    "5.4": {
        "divided by ‖k‖ instead of ‖k‖²": Change("/ (key @ key)", "/ key.norm()"),
        "the residual's sign flipped": Change("residual = value - weight @ key", "residual = weight @ key - value"),
    },
    "5.5": {
        "the preserved keys left out": Change("system = k0 @ k0.T + k1 @ k1.T", "system = k1 @ k1.T"),
        "the ridge left out": Change(" + ridge * torch.eye(weight.shape[1], dtype=weight.dtype)", ""),
    },
    "5.6": {
        "v1 = δ (the current value W k1 forgotten)": Change(
            "new_value = weight @ key.double() + change.double()", "new_value = change.double()"),
        "Δ added without the transpose": Change(
            "module.weight += delta.T.to(module.weight.dtype)", "module.weight += delta.to(module.weight.dtype)"),
        "edit computed but not written": Change(
            "        module.weight += delta.T.to(module.weight.dtype)\n", "        pass\n"),
    },
}

LESSON_6 = {
    "6.1": {
        "λ left out": Change("system = covariance_weight * key_covariance + keys.T @ keys",
                             "system = key_covariance + keys.T @ keys"),
        "the cache of earlier edits ignored": Change("        system = system + edited_covariance\n", "        pass\n"),
    },
    "6.2": {
        "no clamp": Change("                if delta.norm() > max_norm:\n                    delta.mul_(max_norm / delta.norm())\n",
                           "                pass\n"),
        "the KL term left out": Change("loss = nll + hparams.kl_factor * kl + ", "loss = nll + "),
        "the weight decay left out": Change(" + hparams.v_weight_decay * delta.norm() / hidden.norm() ** 2", ""),
        "a step after the last evaluation (T steps instead of T − 1)": Change(
            "if loss.item() < hparams.early_stop_loss or step == hparams.v_num_grad_steps:",
            "if loss.item() < hparams.early_stop_loss:"),
        "no early stop": Change("if loss.item() < hparams.early_stop_loss or step == hparams.v_num_grad_steps:",
                                "if step == hparams.v_num_grad_steps:"),
        "the model's parameters left trainable": Change("    for p in model.parameters():\n        p.requires_grad_(False)\n", ""),
    },
    "6.3": {
        "the same share 1/L at every layer": Change("/ (len(layers) - i)", "/ len(layers)"),
        "h_L read once, before the first layer's edit": Change(
            "now = subject_outputs(model, tokenizer, layers[-1], requests).double()",
            "now = now if i else subject_outputs(model, tokenizer, layers[-1], requests).double()"),
        "keys read once, before the first layer's edit": '''
def memit_edit(model, tokenizer, requests, targets, layers, key_covariances, covariance_weight, contexts):
    prompts, subjects = [r.prompt for r in requests], [r.subject for r in requests]
    all_keys = {layer: compute_ks(model, tokenizer, layer, prompts, subjects, contexts).double() for layer in layers}
    applied = {}
    for i, layer in enumerate(layers):
        now = subject_outputs(model, tokenizer, layers[-1], requests).double()
        residuals = (targets.double() - now) / (len(layers) - i)
        delta = memit_delta(all_keys[layer], residuals, key_covariances[layer].double(), covariance_weight, None)
        module = model.transformer.h[layer].mlp.c_proj
        with torch.no_grad():
            module.weight += delta.T.to(module.weight.dtype)
        applied[layer] = delta
    return applied
''',
        "Δ not written before the next layer": Change(
            "            module.weight += delta.T.to(module.weight.dtype)\n", "            pass\n"),
    },
    "6.4": {
        "ties counted as successes": Change("(new < true)", "(new <= true)"),
        "all prompts pooled (requests not weighed equally)": Change(
            "    per_request = [float((new < true).float().mean()) for new, true in zip(nll_new, nll_true)]\n"
            "    return 100.0 * sum(per_request) / len(per_request)",
            "    return 100.0 * float((torch.cat(nll_new) < torch.cat(nll_true)).float().mean())"),
    },
    "6.5": {
        "natural logarithm instead of bits": Change("torch.log2(p)", "torch.log(p)"),
        "distinct n-grams counted once each": Change(
            "counts = torch.tensor([grams.count(g) for g in set(grams)], dtype=torch.float64)",
            "counts = torch.ones(len(set(grams)), dtype=torch.float64)"),
    },
}

MISTAKES = {**LESSON_1, **LESSON_2, **LESSON_5, **LESSON_6}
