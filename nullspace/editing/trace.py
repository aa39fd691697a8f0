"""Causal tracing in the spirit of ROME (Meng et al., 2022, §2.1): where is a fact recalled?

1. Clean run: the model reads "Orsen lives in" and gives "Nairobi" probability ``p_clean``.
2. Corrupted run: Gaussian noise is added to the subject's token embeddings; the probability
   drops to ``p_corrupt`` (the model no longer knows who is meant).
3. Restored runs: in the corrupted run, one internal state (a block's output, its MLP output or
   its attention output) at one layer and one position is replaced by its clean value. If the
   answer's probability comes back, that state carried the fact. The *indirect effect* of the
   state is ``p_restored − p_corrupt``.

Heat maps of the restored probability over (position, layer) are ROME's Figure 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nullspace.editing import architectures
from nullspace.editing.keys import subject_token_index
from nullspace.editing.evaluation.recall import object_token_id
from nullspace.editing.prompts import leading_special_ids
from nullspace.editing.world.facts import World

__all__ = ["KINDS", "TraceResult", "average_indirect_effects", "embedding_noise_level", "mean_indirect_effects",
           "plot_trace", "trace_fact", "trace_random_facts"]

KINDS = ("hidden", "mlp", "attn")


@dataclass(frozen=True)
class TraceResult:
    """Restored probabilities of one fact: ``restored[layer, position]`` for one ``kind``."""

    tokens: list[str]
    subject_positions: list[int]
    kind: str
    answer: str
    p_clean: float
    p_corrupt: float
    restored: np.ndarray

    @property
    def indirect_effect(self) -> np.ndarray:
        """``restored − p_corrupt`` per (layer, position)."""
        return self.restored - self.p_corrupt


def embedding_noise_level(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                          subjects: Sequence[str], factor: float = 3.0) -> float:
    """ROME's noise scale: ``factor`` times the standard deviation of the subjects' token embeddings."""
    ids = sorted({i for s in subjects for i in tokenizer(s, add_special_tokens=False)["input_ids"]})
    if not ids:
        raise ValueError("no subject tokens: pass at least one subject.")
    embeddings = architectures.token_embedding(model).weight[ids].detach().float()
    return factor * float(embeddings.std())


def _module(model: PreTrainedModel, kind: str, layer: int) -> torch.nn.Module:
    return architectures.sublayer(model, kind, layer)


def _output_tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def trace_fact(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, subject: str,
               answer: str, kind: str = "hidden", noise: float = 0.1, samples: int = 10,
               seed: int = 0, max_batch_rows: int = 512) -> TraceResult:
    """Trace one fact: ``prompt`` has ``{}`` for ``subject``; ``answer`` is the expected object.

    A first batch holds the clean run (row 0) and ``samples`` corrupted runs with fixed noise
    (seeded), and records every layer's clean state. The restorations are then batched: each
    group of ``samples`` rows restores one (layer, position), up to ``max_batch_rows`` rows per
    forward pass, instead of one forward pass per (layer, position).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    text = prompt.format(subject)
    ids = torch.tensor(leading_special_ids(tokenizer) + tokenizer(text, add_special_tokens=False)["input_ids"])
    last = subject_token_index(tokenizer, prompt, subject)
    first = last + 1 - len(tokenizer(subject, add_special_tokens=False)["input_ids"])
    subject_positions = list(range(max(first, 0), last + 1))
    answer_id = object_token_id(tokenizer, answer)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    noise_values = noise * torch.randn(samples, len(subject_positions), architectures.hidden_size(model),
                                       generator=generator)
    corrupted_rows = slice(1, None)

    def corrupt(_module, _inputs, output):
        output = output.clone()
        rows = output[corrupted_rows]
        rows[:, subject_positions] += noise_values.repeat(rows.shape[0] // samples, 1, 1).to(output.device,
                                                                                               output.dtype)
        return output

    def answer_probabilities(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(input_ids=batch).logits[:, -1].float(), dim=-1)[:, answer_id].cpu()

    n_layers = len(architectures.blocks(model))
    clean_states: dict[int, torch.Tensor] = {}
    record_handles = [
        _module(model, kind, layer).register_forward_hook(
            lambda _m, _i, out, layer=layer: clean_states.__setitem__(layer, _output_tensor(out)[0].detach().clone()))
        for layer in range(n_layers)
    ]
    corrupt_handle = architectures.token_embedding(model).register_forward_hook(corrupt)
    try:
        try:
            probs = answer_probabilities(ids[None].repeat(samples + 1, 1).to(device))
        finally:
            for handle in record_handles:
                handle.remove()
        p_clean, p_corrupt = float(probs[0]), float(probs[1:].mean())
        corrupted_rows = slice(None)
        tasks = [(layer, position) for layer in range(n_layers) for position in range(len(ids))]
        per_batch = max(1, max_batch_rows // samples)
        restored = np.zeros((n_layers, len(ids)))
        for start in range(0, len(tasks), per_batch):
            chunk = tasks[start:start + per_batch]
            handles = [_module(model, kind, layer).register_forward_hook(_restorer(chunk, layer, samples, clean_states))
                       for layer in sorted({layer for layer, _ in chunk})]
            try:
                probs = answer_probabilities(ids[None].repeat(len(chunk) * samples, 1).to(device))
            finally:
                for handle in handles:
                    handle.remove()
            for j, (layer, position) in enumerate(chunk):
                restored[layer, position] = float(probs[j * samples:(j + 1) * samples].mean())
    finally:
        corrupt_handle.remove()
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    return TraceResult(tokens, subject_positions, kind, answer, p_clean, p_corrupt, restored)


def _restorer(chunk: list[tuple[int, int]], layer: int, samples: int, clean_states: dict[int, torch.Tensor]):
    """A hook that copies ``layer``'s clean state into the rows of the chunk's tasks at that layer."""
    rows, positions = [], []
    for j, (task_layer, position) in enumerate(chunk):
        if task_layer == layer:
            rows.extend(range(j * samples, (j + 1) * samples))
            positions.extend([position] * samples)

    def hook(_module, _inputs, output):
        tensor = _output_tensor(output).clone()
        index = torch.tensor(positions, device=tensor.device)
        tensor[torch.tensor(rows, device=tensor.device), index] = clean_states[layer][index].to(tensor.dtype)
        return (tensor, *output[1:]) if isinstance(output, tuple) else tensor

    return hook


def trace_random_facts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, world: World,
                       facts: int = 20, seed: int = 1, max_batch_rows: int = 512) -> list[dict[str, TraceResult]]:
    """Trace ``facts`` random (person, relation) facts of ``world``, each with its relation's first
    template and ROME's noise level; one ``{kind: TraceResult}`` per fact (``max_batch_rows`` as
    in :func:`trace_fact`)."""
    rng = np.random.default_rng(seed)
    noise = embedding_noise_level(model, tokenizer, [p.name for p in world.people])
    traces = []
    for i in rng.permutation(len(world.people))[:facts]:
        person = world.people[i]
        relation = world.relations[rng.integers(len(world.relations))]
        traces.append({kind: trace_fact(model, tokenizer, relation.templates[0], person.name,
                                        person.facts[relation.relation_id], kind=kind, noise=noise,
                                        max_batch_rows=max_batch_rows)
                       for kind in KINDS})
    return traces


def average_indirect_effects(traces: list[dict[str, TraceResult]]) -> dict[str, np.ndarray]:
    """Mean indirect effect per kind, shape ``(n_layers, 2)``: column 0 at the subject's last
    token, column 1 at the last token."""
    return {kind: np.mean([np.stack([t[kind].indirect_effect[:, t[kind].subject_positions[-1]],
                                     t[kind].indirect_effect[:, -1]], axis=1) for t in traces], axis=0)
            for kind in KINDS}


def mean_indirect_effects(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, world: World,
                          facts: int = 20, seed: int = 1) -> dict[str, np.ndarray]:
    """:func:`average_indirect_effects` of :func:`trace_random_facts`."""
    return average_indirect_effects(trace_random_facts(model, tokenizer, world, facts, seed))


def plot_trace(ax: Axes, result: TraceResult, title: str = "") -> None:
    """ROME-style heat map: positions down, layers across, colour = restored probability."""
    names = {"hidden": "block output", "mlp": "MLP output", "attn": "attention output"}
    image = ax.imshow(result.restored.T, cmap={"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}[result.kind],
                      vmin=min(result.p_corrupt, float(result.restored.min())), vmax=max(result.p_clean, 1e-9),
                      aspect="auto")
    labels = [f"{t}*" if i in result.subject_positions else t for i, t in enumerate(result.tokens)]
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xticks(range(result.restored.shape[0]))
    ax.set_xlabel("layer")
    ax.grid(False)
    ax.set_title(title or f"restore {names[result.kind]}")
    ax.figure.colorbar(image, ax=ax, label=f"p({result.answer})")
