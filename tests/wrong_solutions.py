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

LESSON_3 = {
    "3.1": {
        "the diagonal's mean (plasticity)": Change("np.mean(R[-1])", "np.mean(np.diag(R))"),
        "every entry averaged": Change("np.mean(R[-1])", "np.nanmean(R)"),
    },
    "3.2": {
        "divided by T": Change("return float(np.mean([R[-1, j] - R[j, j] for j in range(T - 1)]))",
                               "return float(sum(R[-1, j] - R[j, j] for j in range(T - 1)) / T)"),
        "just-learnt minus final (sign flipped)": Change("R[-1, j] - R[j, j]", "R[j, j] - R[-1, j]"),
    },
    "3.3": {
        "the diagonal instead of the best earlier accuracy (−BWT)": Change("np.max(R[j:T - 1, j])", "R[j, j]"),
        "the last row inside the maximum": Change("np.max(R[j:T - 1, j])", "np.max(R[j:T, j])"),
    },
    "3.4": {
        "the ½ left out": Change("return 0.5 * strength * sum(", "return strength * sum("),
        "|θ − θ*| instead of its square": Change("(params[name] - anchors[name]) ** 2",
                                                 "(params[name] - anchors[name]).abs()"),
        "returned as a float (no gradient)": Change("for name in params)", "for name in params).item()"),
    },
    "3.5": {
        "the square of the batch's gradient": '''
def diagonal_fisher_estimate(model, task_index, inputs, labels):
    params = {name: p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("heads.")}
    was_training = model.training
    model.eval()
    loss = F.cross_entropy(model(inputs, task_index), labels)
    gradients = torch.autograd.grad(loss, list(params.values()))
    model.train(was_training)
    return {name: g.pow(2) for name, g in zip(params, gradients)}
''',
        "summed over the samples, not averaged": Change("value / len(inputs)", "value"),
        "left in train mode": Change("    model.eval()\n", ""),
        "the heads included": Change(' and not name.startswith("heads.")', ""),
        "the model left in eval mode": Change("    model.train(was_training)\n", ""),
    },
    "3.6": {
        "no temperature scaling (T² left out)": Change("return temperature ** 2 * (", "return ("),
        "KL the other way round (new ‖ old)": Change("(old * (log_old - log_new))",
                                                     "(log_new.exp() * (log_new - log_old))"),
        "logits not divided by T": Change("log_new = F.log_softmax(new_logits / temperature, dim=1)",
                                         "log_new = F.log_softmax(new_logits, dim=1)"),
    },
}

LESSON_4 = {
    "4.1": {
        "the gradient projected before Adam (GPM's order)": Change(
            """                state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = state["exp_avg"] / (1 - beta1 ** state["step"])
                v_hat = state["exp_avg_sq"] / (1 - beta2 ** state["step"])
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if p in self.null_bases:
                    basis = self.null_bases[p]
                    rows = update.reshape(p.shape[0], -1).to(basis.dtype)
                    update = (rows @ basis @ basis.T).reshape(p.shape).to(p.dtype)
""",
            """                grad = p.grad
                if p in self.null_bases:
                    basis = self.null_bases[p]
                    rows = grad.reshape(p.shape[0], -1).to(basis.dtype)
                    grad = (rows @ basis @ basis.T).reshape(p.shape).to(p.dtype)
                state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                m_hat = state["exp_avg"] / (1 - beta1 ** state["step"])
                v_hat = state["exp_avg_sq"] / (1 - beta2 ** state["step"])
                update = m_hat / (v_hat.sqrt() + group["eps"])
"""),
        "no bias correction": Change(
            'm_hat = state["exp_avg"] / (1 - beta1 ** state["step"])\n'
            '                v_hat = state["exp_avg_sq"] / (1 - beta2 ** state["step"])',
            'm_hat, v_hat = state["exp_avg"], state["exp_avg_sq"]'),
        "a convolution's update not viewed as (out, C·k·k)": Change(
            "rows = update.reshape(p.shape[0], -1).to(basis.dtype)", "rows = update.to(basis.dtype)"),
        "every group stepped with the first group's lr": Change(
            'p.add_(update, alpha=-group["lr"])', 'p.add_(update, alpha=-self.param_groups[0]["lr"])'),
    },
    "4.2": {
        "squared norms (a share of energy)": Change(
            "(update @ range_basis).norm() / update.norm()", "(update @ range_basis).norm() ** 2 / update.norm() ** 2"),
    },
    "4.3": {
        "the covariance of this task alone (Eq. 4 forgotten)": Change(
            "    with torch.no_grad(), record_covariances(", "    accumulators = {}\n    with torch.no_grad(), record_covariances("),
        "the model left in eval mode": Change("    model.train(was_training)\n", ""),
        "an empty null space refused (allow_empty left out)": Change(
            "null_space(acc.covariance, rule, allow_empty=True)", "null_space(acc.covariance, rule)"),
    },
    "4.4": {
        "plain Adam on every task (the null bases never handed over)": Change(
            "null_bases={layers[name].weight: basis for name, basis in bases.items()})", "null_bases={})"),
        "the null spaces of the last task alone": Change(
            "accumulators, bases = add_task_and_find_null_bases(model, task, accumulators, rule)",
            "_, bases = add_task_and_find_null_bases(model, task, {}, rule)"),
        "one optimizer for every task (Adam's moments carried over)": """
def train_in_null_space(benchmark, make_model, epochs, batch_size, seed, rule, lr, head_lr):
    seed_everything(seed)
    model = make_model()
    order = torch.Generator().manual_seed(seed)
    accumulators = {}
    accuracy = np.full((benchmark.num_tasks, benchmark.num_tasks), np.nan)
    optimizer = NullSpaceAdam([{"params": list(model.shared_parameters()), "lr": lr},
                               {"params": [p for head in model.heads for p in head.parameters()], "lr": head_lr}])
    for task in benchmark.tasks:
        for j, head in enumerate(model.heads):
            head.requires_grad_(j == task.index)
        model.train()
        for _ in range(epochs):
            for batch in torch.randperm(len(task.train_x), generator=order).split(batch_size):
                loss = F.cross_entropy(model(task.train_x[batch], task.index), task.train_y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        accumulators, bases = add_task_and_find_null_bases(model, task, accumulators, rule)
        layers = model.shared_layers()
        optimizer.null_bases = {layers[name].weight: basis for name, basis in bases.items()}
        for j in range(task.index + 1):
            accuracy[task.index, j] = evaluate(model, benchmark.tasks[j])[0]
    return accuracy
""",
    },
    "4.5": {
        "signed eigenvalues compared (round-off below zero)": Change("singular = eigenvalues.abs()", "singular = eigenvalues"),
        "the protected directions returned": Change("singular <= a * singular.min()", "singular > a * singular.min()"),
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
        "the KL read after the essence prompt's last token, not at the subject": Change(
            "logits[n, positions[n]]", "logits[n, len(essence) - 1]"),
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

LESSON_7 = {
    "7.1": {
        "MEMIT's system (no P in it)": Change("system = projector @ (keys.T @ keys)", "system = keys.T @ keys"),
        "P left out of the right-hand side": Change("projector @ keys.T @ residuals", "keys.T @ residuals"),
        "the identity not scaled by L2": Change("l2 * torch.eye(", "torch.eye("),
    },
    "7.2": {
        "relative to the size of the weight, not of the outputs": Change(
            "/ torch.linalg.norm(preserved_keys @ weight.T))", "/ torch.linalg.norm(weight))"),
    },
    "7.3": {
        "P left out of the N × N system": Change("system = projected @ all_keys.T", "system = all_keys @ all_keys.T"),
        "the earlier keys stacked first": Change("all_keys = torch.cat([keys, earlier_keys])",
                                                "all_keys = torch.cat([earlier_keys, keys])"),
    },
    "7.4": {
        "Kp left out (the cache never grows)": Change(
            "            self.projected_cache[layer] += self.projectors[layer] @ keys.T @ keys\n", "            pass\n"),
        "Kp Kpᵀ cached without P": Change("self.projected_cache[layer] += self.projectors[layer] @ keys.T @ keys",
                                          "self.projected_cache[layer] += keys.T @ keys"),
        "keys read once, before the batch's edits": Change(
            "        applied = {}\n        for i, layer in enumerate(self.layers):\n            keys = self.keys(layer, requests)\n",
            "        applied = {}\n        read_first = {layer: self.keys(layer, requests) for layer in self.layers}\n"
            "        for i, layer in enumerate(self.layers):\n            keys = read_first[layer]\n"),
        "h_L read once, before the first block's edit": Change(
            "            now = subject_outputs(self.model, self.tokenizer, self.layers[-1], requests).double()\n",
            "            now = now if i else subject_outputs(self.model, self.tokenizer, self.layers[-1], requests).double()\n"),
        "the same share 1/L at every block": Change("/ (len(self.layers) - i)", "/ len(self.layers)"),
    },
    "7.5": {
        "padding tokens counted": Change('real = encoded["attention_mask"].bool()',
                                         'real = torch.ones_like(encoded["attention_mask"], dtype=torch.bool)'),
        "each batch divided by its own token count": Change(
            "sums[layer] = sums.get(layer, 0) + rows.T @ rows", "sums[layer] = sums.get(layer, 0) + rows.T @ rows / len(rows)"),
        "hooks never removed": Change("            handle.remove()\n", "            pass\n"),
    },
    "7.6": {
        "divided by the dimension, not the number of facts": Change("/ len(fact_keys)", "/ fact_keys.shape[1]"),
        "α left out": Change("alpha * fact_keys.T", "fact_keys.T"),
    },
}

MISTAKES = {**LESSON_1, **LESSON_2, **LESSON_3, **LESSON_4, **LESSON_5, **LESSON_6, **LESSON_7}
