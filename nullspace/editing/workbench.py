"""Everything an editing experiment needs, prepared once: the model named by
``NULLSPACE_EDIT_MODEL``, the fact world's requests (CounterFact and the same facts as ZsRE
questions), the held-out requests settings are chosen on, ``C0`` per layer (corpus statistics
cached on disk, plus the keys of the preserved facts), the context templates, the
general-ability probe, reference texts for consistency, and one constructor per method.

The lessons and ``benchmarks/editing.py`` start from :func:`prepare_workbench`, so switching the
whole course to GPT-2 XL is one setting (``NULLSPACE_EDIT_MODEL=gpt2-xl``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.contexts import MEMIT_CONTEXT_LENGTHS, ROME_CONTEXT_LENGTHS, sampled_context_templates
from nullspace.editing.evaluation.experiment import CounterFactEvaluation, GeneralAbilityProbe
from nullspace.editing.hparams import EditHyperParams, MethodHyperParams, hparams_for, method_hparams_for
from nullspace.editing.methods.alphaedit import AlphaEditEditor
from nullspace.editing.methods.ft import FineTuneEditor
from nullspace.editing.methods.memit import MemitEditor
from nullspace.editing.methods.rome import RomeEditor
from nullspace.editing.methods.sequential import SequentialEditor, TargetOptimizer
from nullspace.editing.models import (
    ModelAlreadyEditedError,
    edited_blocks,
    load_model,
    restore_loaded_weights,
    weights_as_loaded,
)
from nullspace.editing.preserved import knowledge_covariance, preserved_fact_keys
from nullspace.editing.requests import (
    EditRequest,
    QuestionRecord,
    questions_from_zsre,
    requests_from_counterfact,
)
from nullspace.editing.statistics import DEFAULT_CACHE_DIR, KeyStatistics, key_statistics
from nullspace.editing.world.facts import World, load_counterfact, load_world, load_zsre
from nullspace.linalg import NullSpace, SelectionRule, null_space
from nullspace.settings import edit_model_name
from nullspace.validation import require_int

__all__ = ["HELD_OUT_REQUESTS", "METHODS", "PROTOCOL_EDITS", "Workbench", "prepare_workbench"]

METHODS = ("FT", "ROME", "MEMIT", "AlphaEdit")
# AlphaEdit's protocol edits 2000 requests; the fact world's requests after the first 2000 are held
# out: settings are chosen on them (benchmarks/editing.py), never on the requests that are scored.
PROTOCOL_EDITS = 2000
HELD_OUT_REQUESTS = slice(PROTOCOL_EDITS, None)
# Preserved people left out of K0: their facts measure protection of knowledge the methods were not
# told about (``unlisted_fact_accuracy``).
UNLISTED_PEOPLE = 40
_EDIT_FIELDS = {f.name for f in fields(EditHyperParams)}
_METHOD_FIELDS = {f.name for f in fields(MethodHyperParams)}


@dataclass
class Workbench:
    """The model, data and statistics of the editing lessons, and a factory for editors.

    ``requests`` are the scored requests (at most :data:`PROTOCOL_EDITS`), ``questions`` the same
    facts as ZsRE records, ``heldout_requests`` the requests settings are chosen on.
    """

    model_name: str
    model: torch.nn.Module
    tokenizer: object
    world: World
    requests: list[EditRequest]
    heldout_requests: list[EditRequest]
    questions: list[QuestionRecord]
    hparams: EditHyperParams
    methods: MethodHyperParams
    statistics: dict[int, KeyStatistics]
    probe: GeneralAbilityProbe
    reference_texts: dict[str, list[str]]
    vectorizer: TfidfVectorizer
    sampled_contexts: dict[str, tuple[str, ...]]
    fact_keys: dict[int, torch.Tensor] | None = None
    _covariances: dict[tuple[int, float], torch.Tensor] = field(default_factory=dict, repr=False)
    _null_spaces: dict[tuple[str, float], dict[int, NullSpace]] = field(default_factory=dict, repr=False)

    def key_covariance(self, layer: int, preserved_keys_weight: float | None = None) -> torch.Tensor:
        """``C0(α) = E_tokens[k kᵀ] + α·E_facts[k kᵀ]`` at ``layer`` (float64); ``α`` defaults to
        this model's ``preserved_keys_weight``. Computed once per layer and weight (a tuning grid
        asks for the same matrix again with every editor)."""
        weight = self.methods.preserved_keys_weight if preserved_keys_weight is None else preserved_keys_weight
        if layer not in self.statistics:
            raise ValueError(f"no key statistics for block {layer}: the workbench computed them for blocks "
                             f"{sorted(self.statistics)} (the layers its settings edit). Edit one of those, or "
                             "compute C0 for this block with nullspace.editing.statistics.key_statistics.")
        if (layer, weight) not in self._covariances:
            keys = None if self.fact_keys is None else self.fact_keys.get(layer)
            self._covariances[layer, weight] = knowledge_covariance(self.statistics[layer].covariance, keys, weight)
        return self._covariances[layer, weight]

    def context_templates(self, method: str, source: str | None = None) -> tuple[str, ...]:
        """The context templates of ``method``'s keys and targets from ``source`` (default: this
        model's ``context_source``): ``"sampled"`` from the unedited model (ROME: "{}" + 20,
        MEMIT/AlphaEdit: "{}" + 5, as the official code), ``"world"`` ("{}" and five first
        sentences of the general text) or ``"bare"`` ("{}" alone)."""
        source = source or self.methods.context_source
        if source == "sampled":
            return self.sampled_contexts["ROME" if method == "ROME" else "MEMIT"]
        if source == "world":
            return tuple(self.world.context_templates(6))
        if source == "bare":
            return ("{}",)
        raise ValueError(f"unknown context source {source!r}; choose 'sampled', 'world' or 'bare'.")

    def settings(self, **overrides) -> tuple[EditHyperParams, MethodHyperParams]:
        """This model's settings with ``overrides`` (fields of either dataclass) replaced."""
        unknown = set(overrides) - _EDIT_FIELDS - _METHOD_FIELDS
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)} for this editor; the settings are the fields of EditHyperParams "
                            f"and MethodHyperParams (nullspace/editing/hparams.py): "
                            f"{', '.join(sorted(_EDIT_FIELDS | _METHOD_FIELDS))}.")
        edit = replace(self.hparams, **{k: v for k, v in overrides.items() if k in _EDIT_FIELDS})
        method = replace(self.methods, **{k: v for k, v in overrides.items() if k in _METHOD_FIELDS})
        return edit, method

    def editor(self, method: str, **overrides) -> SequentialEditor:
        """An editor for ``method`` with this model's settings; ``overrides`` replace fields of
        :class:`~nullspace.editing.hparams.EditHyperParams` or
        :class:`~nullspace.editing.hparams.MethodHyperParams` (tuning grids, ablations).

        Every editor restores the weights *as loaded* on ``reset()`` (not the weights of the moment
        it was built: an earlier experiment may have left its edits in the model).

        Raises:
            ValueError: an unknown method, or an override out of range.
            TypeError: an override that is not a field of either dataclass.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}.")
        edit, settings = self.settings(**overrides)
        alpha = settings.preserved_keys_weight
        contexts = self.context_templates(method, settings.context_source)
        if method == "MEMIT":
            return MemitEditor(self.model, self.tokenizer, edit.layers, TargetOptimizer(edit, contexts),
                               key_covariances={l: self.key_covariance(l, alpha) for l in edit.layers},
                               covariance_weight=settings.memit_covariance_weight, variant=settings.memit_variant,
                               ridge=settings.memit_ridge, context_templates=contexts,
                               key_weighting=settings.key_weighting)
        if method == "AlphaEdit":
            return AlphaEditEditor(self.model, self.tokenizer, edit.layers, TargetOptimizer(edit, contexts),
                                   null_spaces=self.null_spaces(settings.alphaedit_rule, alpha, edit.layers),
                                   l2_weight=settings.alphaedit_l2, context_templates=contexts,
                                   key_weighting=settings.key_weighting)
        if method == "ROME":
            rome = replace(edit, layers=(settings.rome_layer,), clamp_norm_factor=settings.rome_clamp_norm_factor)
            return RomeEditor(self.model, self.tokenizer, settings.rome_layer,
                              TargetOptimizer(rome, contexts, at=settings.rome_target),
                              key_covariance=self.key_covariance(settings.rome_layer, alpha),
                              context_templates=contexts, target_at=settings.rome_target)
        if method == "FT":
            return FineTuneEditor(self.model, self.tokenizer, settings.ft_layers,
                                  learning_rate=settings.ft_learning_rate, steps=settings.ft_steps,
                                  norm_constraint=settings.ft_norm_constraint)
        raise AssertionError(f"no constructor for {method!r}")  # unreachable: METHODS was checked above

    def restore_loaded_weights(self) -> None:
        """Put the weights as loaded back into every FFN output matrix an editor may have changed.

        Raises:
            ModelAlreadyEditedError: a block was changed by hand and no copy of it was kept.
        """
        changed = restore_loaded_weights(self.model)
        if changed:
            raise ModelAlreadyEditedError(
                f"blocks {changed} differ from the loaded weights and no copy of them was kept (they were "
                "changed outside an editor); reload with prepare_workbench().")

    def evaluation(self, generation_interval: int = 10) -> CounterFactEvaluation:
        """The CounterFact evaluation with this workbench's consistency references."""
        return CounterFactEvaluation(generation_interval, self.reference_texts, self.vectorizer)

    def unedited_scores(self, requests: list[EditRequest] | None = None, evaluation=None) -> dict[str, float]:
        """The unedited model's row of the table: ``evaluation`` (default: :meth:`evaluation`) of
        ``requests`` (default: all scored requests) and the general-ability probe, as
        :func:`~nullspace.editing.evaluation.experiment.run_sequential_editing` scores an edited
        model.

        Raises:
            ModelAlreadyEditedError: the model holds edits (an experiment leaves them in the model).
        """
        changed = edited_blocks(self.model)
        if changed:
            raise ModelAlreadyEditedError(
                f"the model holds edits (blocks {changed} differ from the loaded weights), so its scores are not "
                "the unedited row. Call reset() on the editor that made them, or restore_loaded_weights().")
        requests = self.requests if requests is None else requests
        scores = (evaluation or self.evaluation())(self.model, self.tokenizer, requests)
        scores.update(self.probe.measure(self.model, self.tokenizer))
        return scores

    def null_spaces(self, rule: SelectionRule, preserved_keys_weight: float | None = None,
                    layers: tuple[int, ...] | None = None) -> dict[int, NullSpace]:
        """AlphaEdit's null space of ``C0(α)`` at every edited layer (Eq. 8–9), built once per
        rule and ``α``."""
        weight = self.methods.preserved_keys_weight if preserved_keys_weight is None else preserved_keys_weight
        spaces = self._null_spaces.setdefault((repr(rule), weight), {})
        for layer in layers or self.hparams.layers:
            if layer not in spaces:
                spaces[layer] = null_space(self.key_covariance(layer, weight), rule)
        return {layer: spaces[layer] for layer in layers or self.hparams.layers}


def _reference_texts(world: World, texts: list[str]) -> dict[str, list[str]]:
    """Texts about each object: the general-text biographies of the people who have it."""
    references: dict[str, list[str]] = defaultdict(list)
    people = world.preserved_people
    per_person = len(texts) // len(people)
    for index, person in enumerate(people):
        for obj in person.facts.values():
            references[obj].extend(texts[index * per_person:(index + 1) * per_person])
    return dict(references)


def prepare_workbench(model_name: str | None = None, *, edits: int | None = None,
                      probe_facts: int | None = None, recompute_statistics: bool = False,
                      statistics_cache: Path | str | None = DEFAULT_CACHE_DIR, context_seed: int = 0) -> Workbench:
    """Load the model and data, and compute (or load cached) ``C0`` at every layer an editor uses.

    Args:
        model_name: default ``NULLSPACE_EDIT_MODEL`` (``course-gpt2``).
        edits: keep the first ``edits`` scored requests (all :data:`PROTOCOL_EDITS` when None);
            the requests after them are held out for choosing settings and never scored.
        probe_facts: how many unedited facts the general-ability probe asks (all when None).
        recompute_statistics: replace cached ``C0`` files computed from other weights (after
            the model was retrained, say) instead of refusing them.
        statistics_cache: where ``C0`` files are cached (default ``data/cache/key_statistics``;
            None: compute without caching).
        context_seed: the seed of the context templates sampled from the unedited model.
    """
    name = model_name or edit_model_name()
    if edits is not None:
        require_int(edits, "edits", minimum=1, hint="It keeps the first `edits` requests; None keeps them all.")
    if probe_facts is not None:
        require_int(probe_facts, "probe_facts", minimum=1, hint="None asks every unedited fact.")
    model, tokenizer = load_model(name)
    world = load_world()
    records = load_counterfact()
    scored = records[:PROTOCOL_EDITS]
    if edits is not None and not 1 <= edits <= len(scored):
        raise ValueError(f"edits must lie between 1 and {len(scored)}: the fact world has {len(records)} requests "
                         f"and the {len(records) - len(scored)} after the first {len(scored)} are held out for "
                         f"choosing settings; got {edits}.")
    requests = requests_from_counterfact(scored, edits)
    heldout = requests_from_counterfact(records[HELD_OUT_REQUESTS])
    questions = questions_from_zsre(load_zsre(), len(requests))
    hparams, methods = hparams_for(name), method_hparams_for(name)
    texts = world.general_text()[:methods.statistics_texts]
    layers = sorted({*hparams.layers, methods.rome_layer})
    statistics = key_statistics(model, tokenizer, name, layers, texts, cache_dir=statistics_cache,
                                recompute=recompute_statistics)
    listed, unlisted = world.preserved_people[:-UNLISTED_PEOPLE], world.preserved_people[-UNLISTED_PEOPLE:]

    def facts_of(people):
        rows = [(prompt, obj) for person in people for _, prompt, obj in world.fact_prompts(person, "templates")]
        return rows[:probe_facts] if probe_facts else rows

    facts, unlisted_facts = facts_of(listed), facts_of(unlisted)
    heldout_texts = world.general_text(biographies_per_person=1, seed=1)
    probe = GeneralAbilityProbe([p for p, _ in facts], [o for _, o in facts], heldout_texts,
                                [p for p, _ in unlisted_facts], [o for _, o in unlisted_facts])
    vectorizer = TfidfVectorizer().fit(texts)
    contexts = {"MEMIT": sampled_context_templates(model, tokenizer, MEMIT_CONTEXT_LENGTHS, seed=context_seed),
                "ROME": sampled_context_templates(model, tokenizer, ROME_CONTEXT_LENGTHS, seed=context_seed)}
    # K0 of the preserved facts; only models that know the fact world (GPT-2 XL does not) use it
    fact_keys = preserved_fact_keys(model, tokenizer, world, listed, layers) if methods.preserved_keys_weight else None
    weights_as_loaded(model, sorted({*layers, *methods.ft_layers}))  # keep the copies every editor restores
    return Workbench(name, model, tokenizer, world, requests, heldout, questions, hparams, methods, statistics,
                     probe, _reference_texts(world, world.general_text()), vectorizer, contexts, fact_keys)
