"""Where the locate-then-edit methods read and write in each model family of AlphaEdit's Table 1.

Every code path of the editing package (keys, target vectors, the spread over layers, key
statistics, the causal trace, the editors) reaches a model's modules through this one table, so
GPT-2 (XL), GPT-J and Llama 3 all take the same path:

============  ===============================  ==========================  ======================
family        edited matrix ``W`` (the key is   its weight's storage         block output (``h``)
              its input, the value its output)
============  ===============================  ==========================  ======================
``gpt2``      ``transformer.h[l].mlp.c_proj``  Conv1D ``(d_ff, d_model)``  ``transformer.h[l]``
``gptj``      ``transformer.h[l].mlp.fc_out``  Linear ``(d_model, d_ff)``  ``transformer.h[l]``
``llama``     ``model.layers[l].mlp.down_proj``  Linear ``(d_model, d_ff)``  ``model.layers[l]``
============  ===============================  ==========================  ======================

The key is the input of ``W`` at a token: GPT-2 and GPT-J ``gelu(W_in x)``, Llama
``silu(W_gate x) ⊙ (W_up x)``. ``nullspace.capture.weight_as_matrix`` views either storage as the
paper's ``(d_model, d_ff)`` ``W``. The names are the official code's ``rewrite_module_tmp``,
``layer_module_tmp``, ``mlp_module_tmp`` and ``attn_module_tmp`` (hparams JSON files of the MEMIT
and AlphaEdit repositories).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["ARCHITECTURES", "Architecture", "architecture_of", "block", "blocks", "ffn_output", "hidden_size", "sublayer",
           "token_embedding"]


@dataclass(frozen=True)
class Architecture:
    """Module paths of one model family (dotted, ``{}`` for the block index)."""

    family: str
    blocks: str
    edited_matrix: str
    mlp: str
    attention: str
    token_embedding: str
    final_norm: str
    edited_storage: str

    def module(self, model: nn.Module, template: str, layer: int | None = None) -> nn.Module:
        """The submodule at ``template`` (with ``layer`` filled in)."""
        return model.get_submodule(template.format(layer) if layer is not None else template)


ARCHITECTURES: dict[str, Architecture] = {
    "gpt2": Architecture("gpt2", "transformer.h", "transformer.h.{}.mlp.c_proj", "transformer.h.{}.mlp",
                         "transformer.h.{}.attn", "transformer.wte", "transformer.ln_f",
                         "Conv1D weight (d_ff, d_model): y = x @ weight"),
    "gptj": Architecture("gptj", "transformer.h", "transformer.h.{}.mlp.fc_out", "transformer.h.{}.mlp",
                         "transformer.h.{}.attn", "transformer.wte", "transformer.ln_f",
                         "Linear weight (d_model, d_ff): y = x @ weight.T"),
    "llama": Architecture("llama", "model.layers", "model.layers.{}.mlp.down_proj", "model.layers.{}.mlp",
                          "model.layers.{}.self_attn", "model.embed_tokens", "model.norm",
                          "Linear weight (d_model, d_ff): y = x @ weight.T"),
}
# Families that share Llama's layout (the course has tested the three above only).
_SAME_AS = {"mistral": "llama", "qwen2": "llama"}


def architecture_of(model: nn.Module) -> Architecture:
    """The :class:`Architecture` of ``model`` from ``model.config.model_type``.

    Raises:
        ValueError: the model family is not in the table (the message lists the known ones).
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    family = _SAME_AS.get(model_type, model_type)
    if family not in ARCHITECTURES:
        raise ValueError(f"model_type {model_type!r} is not supported by the editing methods; supported: "
                         f"{', '.join(ARCHITECTURES)}. Add its module names to nullspace/editing/architectures.py.")
    return ARCHITECTURES[family]


def blocks(model: nn.Module) -> nn.ModuleList:
    """The model's transformer blocks, in order."""
    arch = architecture_of(model)
    return arch.module(model, arch.blocks)


def _check_layer(model: nn.Module, layer: int) -> Architecture:
    count = len(blocks(model))
    if not isinstance(layer, int) or not 0 <= layer < count:
        raise IndexError(f"layer {layer} does not exist: the model has blocks 0..{count - 1}.")
    return architecture_of(model)


def block(model: nn.Module, layer: int) -> nn.Module:
    """Block ``layer``; its output is the residual stream ``h`` that target vectors move."""
    arch = _check_layer(model, layer)
    return arch.module(model, arch.blocks)[layer]


def ffn_output(model: nn.Module, layer: int) -> nn.Module:
    """The edited FFN output matrix ``W`` of block ``layer`` (``c_proj`` / ``fc_out`` / ``down_proj``)."""
    arch = _check_layer(model, layer)
    return arch.module(model, arch.edited_matrix, layer)


def sublayer(model: nn.Module, kind: str, layer: int) -> nn.Module:
    """``kind`` = ``hidden`` (the block), ``mlp`` or ``attn`` of block ``layer`` (the causal trace)."""
    arch = _check_layer(model, layer)
    if kind == "hidden":
        return arch.module(model, arch.blocks)[layer]
    templates = {"mlp": arch.mlp, "attn": arch.attention}
    if kind not in templates:
        raise ValueError(f"kind must be 'hidden', 'mlp' or 'attn', got {kind!r}.")
    return arch.module(model, templates[kind], layer)


def token_embedding(model: nn.Module) -> nn.Embedding:
    """The input token embedding (``wte`` / ``embed_tokens``)."""
    arch = architecture_of(model)
    return arch.module(model, arch.token_embedding)


def hidden_size(model: nn.Module) -> int:
    """``d_model``, the width of the residual stream."""
    return token_embedding(model).weight.shape[1]
