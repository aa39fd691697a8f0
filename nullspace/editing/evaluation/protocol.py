"""The course's reproduction of AlphaEdit's protocol: the names of the two MEMIT baselines, the
held-out tuning grids, and the fingerprint that ties cached results to what produced them.

``benchmarks/editing.py`` runs the protocol (hours of CPU) and stores its results twice:
``benchmarks/results/editing.json`` and, for lesson 7, ``data/results/editing_protocol.json``
(recorded in ``data/CHECKSUMS.sha256``). Both carry :func:`protocol_fingerprint`: the settings of
the course model (``nullspace/editing/hparams.py``) other than the :data:`TUNED_FIELDS`, which
every run states itself, the checksums of the model and of the fact world's files, and
:data:`PROTOCOL_VERSION`. A test recomputes it, so changing any of these
without re-running the benchmark fails loudly instead of leaving stale numbers in the lesson.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from nullspace.editing.hparams import MEMIT_VARIANTS, hparams_for, method_hparams_for
from nullspace.linalg import AbsoluteRule
from nullspace.paths import DATA_DIR

__all__ = [
    "ABLATION_SWITCHES",
    "BASELINE_NAMES",
    "LESSON_RESULTS",
    "PROTOCOL_VERSION",
    "TUNED_FIELDS",
    "TUNING_BATCH",
    "TUNING_GRIDS",
    "ablation_plan",
    "describe_settings",
    "display_name",
    "load_lesson_results",
    "protocol_fingerprint",
]

# Bump when the protocol's code changes what the benchmark measures (the runner, a method, a metric).
PROTOCOL_VERSION = 1
LESSON_RESULTS = DATA_DIR / "results" / "editing_protocol.json"
# The two baselines AlphaEdit's paper calls MEMIT, named for what they are.
BASELINE_NAMES = {("MEMIT", "table1"): "MEMIT (Table 1: no cache of edited keys)",
                  ("MEMIT", "eq15"): "MEMIT + Kp (Eq. 15)"}
# Settings are chosen on the held-out requests, edited in batches of TUNING_BATCH.
TUNING_BATCH = 20
TUNING_GRIDS: dict[str, list[dict]] = {
    "FT": [{"ft_norm_constraint": c} for c in (5e-4, 5e-3, 2e-2)],
    "ROME": [{"rome_layer": layer} for layer in (0, 1)],
    "MEMIT": [{"memit_variant": variant, "memit_covariance_weight": lam}
              for variant in MEMIT_VARIANTS for lam in (1e2, 1e3, 1e4, 2e4)],
    "AlphaEdit": [{"alphaedit_rule": AbsoluteRule(t), "alphaedit_l2": l2} for t in (1e-3, 1e-2, 2e-2) for l2 in (1.0, 10.0)],
}
# The ablation part: each protocol choice switched back to the course's earlier one, one at a time,
# for Table 1's MEMIT and AlphaEdit; the ridge isolates the mechanism of Table-1 MEMIT's collapse;
# ROME's own clamp and target switched back for ROME.
ABLATION_SWITCHES: dict[str, dict] = {
    "contexts from the world's text": {"context_source": "world"},
    "no context templates (bare prompt)": {"context_source": "bare"},
    "flat mean of the contexts in a key": {"key_weighting": "flat"},
    "KL read at the last token": {"kl_position": "last"},
    "C0 of the corpus alone (α = 0)": {"preserved_keys_weight": 0.0},
}
MEMIT_MECHANISM_SWITCH: dict[str, dict] = {"+ 1·I in its system (mechanism)": {"memit_ridge": 1.0}}
ROME_SWITCHES: dict[str, dict] = {"MEMIT's clamp 0.75": {"rome_clamp_norm_factor": 0.75},
                                  "target at the block output": {"rome_target": "block"}}


def display_name(method: str, overrides: dict) -> str:
    """``MEMIT (Table 1: no cache of edited keys)`` and ``MEMIT + Kp (Eq. 15)``, else the method."""
    return BASELINE_NAMES.get((method, overrides.get("memit_variant")), method)


def ablation_plan(methods: list[tuple[str, dict]]) -> list[tuple[str, str, dict]]:
    """``(label, method, overrides)`` of every ablation run, for the Table-1 methods ``methods``
    (each ``(method, its settings)``): :data:`ABLATION_SWITCHES` for Table 1's MEMIT and AlphaEdit,
    :data:`MEMIT_MECHANISM_SWITCH` for Table 1's MEMIT, :data:`ROME_SWITCHES` for ROME."""
    compared = [(m, o) for m, o in methods if m == "AlphaEdit" or o.get("memit_variant") == "table1"]
    plan = [(f"{display_name(m, o)}: {what}", m, {**o, **switch})
            for what, switch in ABLATION_SWITCHES.items() for m, o in compared]
    plan += [(f"{display_name(m, o)}: {what}", m, {**o, **switch})
             for m, o in compared if m == "MEMIT" for what, switch in MEMIT_MECHANISM_SWITCH.items()]
    plan += [(f"ROME: {what}", m, {**o, **switch}) for m, o in methods if m == "ROME"
             for what, switch in ROME_SWITCHES.items()]
    return plan


# The settings every benchmark run states itself (from the grid point chosen on the held-out
# requests): the course defaults of these fields do not change what the benchmark measures.
TUNED_FIELDS = frozenset(key for grid in TUNING_GRIDS.values() for point in grid for key in point)
_SHORT = {"preserved_keys_weight": "α", "memit_covariance_weight": "λ", "alphaedit_l2": "L2", "rome_layer": "layer",
          "ft_norm_constraint": "L∞", "rome_clamp_norm_factor": "clamp", "memit_ridge": "ridge"}
_FINGERPRINTED_FILES = ("course-gpt2/model.safetensors", "course-gpt2/tokenizer.json", "world/counterfact.json",
                        "world/zsre.json", "world/general_text.txt", "world/world.json")


def describe_settings(overrides: dict) -> str:
    """A grid point or switch in a few characters: ``λ=1000, table1`` (``default`` when empty)."""
    parts = []
    for key, value in overrides.items():
        if hasattr(value, "describe"):
            parts.append(value.describe().split(" (")[0])
        elif isinstance(value, str):
            parts.append(value)
        else:
            parts.append(f"{_SHORT.get(key, key)}={value:g}")
    return ", ".join(parts) or "default"


def protocol_fingerprint(model_name: str = "course-gpt2") -> dict:
    """What the protocol's results depend on: the protocol version, the model's settings and the
    checksums of the shipped model and fact world (JSON-ready)."""
    from nullspace.data_checksums import sha256  # the one checksum of the course

    files = {name: sha256(DATA_DIR / name) for name in _FINGERPRINTED_FILES if (DATA_DIR / name).exists()}
    untuned = {k: v for k, v in asdict(method_hparams_for(model_name)).items() if k not in TUNED_FIELDS}
    return {"protocol": PROTOCOL_VERSION, "model": model_name, "edit_hparams": repr(hparams_for(model_name)),
            "method_hparams": repr(untuned), "files": files}


def load_lesson_results(path: Path = LESSON_RESULTS) -> dict:
    """The protocol's cached results for lesson 7, refused when they no longer match the settings,
    the model or the data (re-run ``python benchmarks/editing.py`` then)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/editing.py` (hours on a CPU) to make it.")
    data = json.loads(path.read_text(encoding="utf-8"))
    now = protocol_fingerprint(data["fingerprint"]["model"])
    if data["fingerprint"] != now:
        changed = sorted(k for k in now if now[k] != data["fingerprint"].get(k))
        raise ValueError(f"{path} was made with other {', '.join(changed)}: re-run `python benchmarks/editing.py` "
                         "so that the lesson shows what the current code and settings give.")
    return data
