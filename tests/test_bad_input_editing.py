"""Bad input into the editing half: unknown words, the tokenizer's padding side, objects with a
leading space, contradictory or malformed batches, out-of-range experiment settings, and an
editor started on a model another experiment left edited."""

import math
from dataclasses import replace

import pytest
import torch
from editing_toy import CITIES, NAMES, WORDS, toy_corpus, toy_model, toy_records, toy_setup, toy_tokenizer
from sklearn.feature_extraction.text import TfidfVectorizer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from nullspace.capture import weight_as_matrix
from nullspace.editing.evaluation.counterfact import counterfact_scores, generate, perplexity, target_scores
from nullspace.editing.evaluation.experiment import GeneralAbilityProbe, run_sequential_editing
from nullspace.editing.evaluation.recall import next_token_logits, object_token_id, top1_accuracy
from nullspace.editing.evaluation.shift import preserved_hidden_states
from nullspace.editing.hparams import EditHyperParams, method_hparams_for
from nullspace.editing.keys import compute_ks, subject_token_index
from nullspace.editing.methods.alphaedit import AlphaEditEditor
from nullspace.editing.methods.ft import FineTuneEditor
from nullspace.editing.methods.memit import MemitEditor
from nullspace.editing.methods.rome import RomeEditor
from nullspace.editing.methods.sequential import TargetOptimizer, subject_outputs
from nullspace.editing.models import ModelAlreadyEditedError, load_model, record_loaded_weights
from nullspace.editing.prompts import target_token_batch, with_leading_space
from nullspace.editing.requests import EditRequest, requests_from_counterfact
from nullspace.editing.spread import apply_delta, ffn_output
from nullspace.editing.statistics import collect_key_statistics
from nullspace.editing.targets import compute_z
from nullspace.editing.workbench import Workbench
from nullspace.linalg import AbsoluteRule, RelativeRule, null_space

pytestmark = pytest.mark.bad_input

LAYERS = (0, 1)
HPARAMS = EditHyperParams(layers=LAYERS, v_num_grad_steps=3, v_lr=0.5, kl_factor=0.0625, v_weight_decay=0.5,
                          clamp_norm_factor=0.75)


@pytest.fixture(scope="module")
def toy():
    return toy_setup([0, 1, 2])


def left_padding(tokenizer):
    tokenizer = toy_tokenizer() if tokenizer is None else tokenizer
    tokenizer.padding_side = "left"
    return tokenizer


def weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def unchanged(model, before) -> bool:
    return all(torch.equal(p, before[name]) for name, p in model.named_parameters())


def request(case_id: int, subject: str, new: str, true: str = "Rome", prompt: str = "{} lives in",
            relation: str = "city") -> EditRequest:
    return EditRequest(case_id, prompt, subject, new, true, relation, generation_prompts=(f"{subject} lives in",))


def fixed_targets(model, tokenizer, requests, layer):
    now = subject_outputs(model, tokenizer, layer, requests)
    return now + 0.3 * torch.randn(now.shape, generator=torch.Generator().manual_seed(len(requests)))


# --- words the tokenizer does not know ------------------------------------------------------------

UNKNOWN_WORD_CASES = {
    "compute_ks subjects": (lambda m, t: compute_ks(m, t, 1, ["{} lives in"], ["ava"]), "subjects", "ava"),
    "compute_ks prompts": (lambda m, t: compute_ks(m, t, 1, ["{} dwells in"], ["Ava"]), "prompts", "dwells"),
    "compute_ks contexts": (lambda m, t: compute_ks(m, t, 1, ["{} lives in"], ["Ava"], ("Bob said {}",)),
                            "context_templates", "Bob"),
    "subject_token_index": (lambda m, t: subject_token_index(t, "{} lives in", "Zorblax"), "subject", "Zorblax"),
    "compute_z object": (lambda m, t: compute_z(m, t, {"prompt": "{} lives in", "subject": "Ava",
                                                        "target_new": {"str": "unicorn"}}, HPARAMS),
                         'request["target_new"]["str"]', "unicorn"),
    "compute_z subject": (lambda m, t: compute_z(m, t, {"prompt": "{} lives in", "subject": "belwyn",
                                                         "target_new": {"str": "Paris"}}, HPARAMS),
                          'request["subject"]', "belwyn"),
    "target_scores targets": (lambda m, t: target_scores(m, t, ["Ava lives in"], ["unicorn"]), "targets", "unicorn"),
    "target_scores prompts": (lambda m, t: target_scores(m, t, ["Zorblax lives in"], ["Paris"]), "prompts", "Zorblax"),
    "subject_outputs": (lambda m, t: subject_outputs(m, t, 1, [request(0, "zorblax", "Paris")]), "edit prompts",
                        "zorblax"),
    "preserved_hidden_states": (lambda m, t: preserved_hidden_states(m, t, 1, ["{} lives in"], ["zorblax"]),
                                "subject", "zorblax"),
    "next_token_logits": (lambda m, t: next_token_logits(m, t, ["Zorblax owns a goat"]), "prompts", "Zorblax"),
    "object_token_id": (lambda m, t: object_token_id(t, "unicorn"), "obj", "unicorn"),
    "top1_accuracy": (lambda m, t: top1_accuracy(m, t, ["Ava lives in"], ["unicorn"]), "obj", "unicorn"),
    "perplexity": (lambda m, t: perplexity(m, t, ["Zorblax owns a goat ."]), "texts", "Zorblax"),
    "generate": (lambda m, t: generate(m, t, ["Zorblax lives in"], max_length=6), "prompts", "Zorblax"),
    "counterfact_scores": (lambda m, t: counterfact_scores(m, t, [request(0, "Ava", "unicorn", "Paris")]),
                           "targets", "unicorn"),
}


@pytest.mark.parametrize("case", list(UNKNOWN_WORD_CASES))
def test_every_reader_refuses_unknown_words_naming_them(toy, case):
    model, tokenizer, _, _ = toy
    call, argument, word = UNKNOWN_WORD_CASES[case]
    with pytest.raises(ValueError) as err:
        call(model, tokenizer)
    message = str(err.value)
    assert message.startswith(argument) and f"{word!r}" in message and "does not know" in message, message
    assert "<|unk|>" in message and "vocabulary" in message


def test_a_lowercase_name_gets_the_capitalised_suggestion(toy):
    model, tokenizer, _, _ = toy
    with pytest.raises(ValueError, match=r"'ava' in 'ava' \(did you mean 'Ava'\?\)"):
        compute_ks(model, tokenizer, 1, ["{} lives in"], ["ava"])


@pytest.mark.parametrize("editor_kind", ["MEMIT", "ROME", "FT"])
def test_an_edit_of_an_unknown_subject_is_refused_before_any_weight_changes(toy, editor_kind):
    model, tokenizer, _, c0 = toy
    before = weights(model)
    editor = {"MEMIT": lambda: MemitEditor(model, tokenizer, LAYERS, TargetOptimizer(HPARAMS), key_covariances=c0,
                                           covariance_weight=1.0),
              "ROME": lambda: RomeEditor(model, tokenizer, 1, TargetOptimizer(HPARAMS), key_covariance=c0[1]),
              "FT": lambda: FineTuneEditor(model, tokenizer, (1,), learning_rate=1e-2, steps=2,
                                           norm_constraint=1e-2)}[editor_kind]()
    with pytest.raises(ValueError, match="does not know: 'zorblax'"):
        editor.edit([request(0, "zorblax", "Paris")])
    assert unchanged(model, before)


def test_course_model_examples_of_the_issue():
    """The issue's examples on the shipped model: 'belwyn' for 'Belwyn', the object 'unicorn', and
    'Zorblax owns a goat' all mapped to <|unk|>; all are refused, naming the words."""
    model, tokenizer = load_model("course-gpt2", device="cpu")
    hparams = replace(EditHyperParams(layers=(0, 1), v_num_grad_steps=2, v_lr=0.5, kl_factor=0.0625,
                                      v_weight_decay=0.5, clamp_norm_factor=0.75))
    with pytest.raises(ValueError, match=r"subjects contains words .*'belwyn' .*did you mean 'Belwyn'"):
        compute_ks(model, tokenizer, 1, ["{} owns a"], ["belwyn"])
    with pytest.raises(ValueError, match=r"request\[\"target_new\"\]\[\"str\"\] contains words .*'unicorn'"):
        compute_z(model, tokenizer, {"prompt": "{} owns a", "subject": "Belwyn", "target_new": {"str": "unicorn"}},
                  hparams)
    with pytest.raises(ValueError, match=r"prompts contains words .*'Zorblax' in 'Zorblax owns a goat'"):
        next_token_logits(model, tokenizer, ["Zorblax owns a goat"])


# --- results do not depend on the tokenizer's padding side ----------------------------------------

PROMPTS = ["Ava lives in", "The home town of Bo is", "Q : Where does Cy live ? A :"]
SUBJECTS = ["Ava", "Bo", "Cy"]
TEMPLATES = ["{} lives in", "The home town of {} is", "Q : Where does {} live ? A :"]

PADDING_READERS = {
    "compute_ks": lambda m, t: compute_ks(m, t, 1, TEMPLATES, SUBJECTS, ("{}", "Ed works as a doctor . {}")),
    "target_scores": lambda m, t: torch.cat([target_scores(m, t, PROMPTS, ["Paris", "Rome", "Oslo"])[0],
                                             target_scores(m, t, PROMPTS, ["Paris", "Rome", "Oslo"])[1].float()]),
    "subject_outputs": lambda m, t: subject_outputs(m, t, 1, [request(i, s, "Paris", "Oslo", p, f"r{i}")
                                                               for i, (p, s) in enumerate(zip(TEMPLATES, SUBJECTS))]),
    "preserved_hidden_states": lambda m, t: preserved_hidden_states(m, t, 1, TEMPLATES, SUBJECTS),
    "next_token_logits": lambda m, t: next_token_logits(m, t, PROMPTS),
    "perplexity": lambda m, t: torch.tensor(perplexity(m, t, [p + " Paris ." for p in PROMPTS])),
}


def one_at_a_time(reader: str, model, tokenizer) -> torch.Tensor:
    """The reader's result with every prompt in a batch of its own (no padding at all)."""
    if reader == "perplexity":  # a mean over tokens: the unpadded reference is a token-weighted mean
        total, count = 0.0, 0
        for p in PROMPTS:
            ids = tokenizer(p + " Paris .", add_special_tokens=False)["input_ids"]
            total += math.log(perplexity(model, tokenizer, [p + " Paris ."])) * (len(ids) - 1)
            count += len(ids) - 1
        return torch.tensor(math.exp(total / count))
    if reader == "target_scores":
        alone = [target_scores(model, tokenizer, [p], [o]) for p, o in zip(PROMPTS, ["Paris", "Rome", "Oslo"])]
        return torch.cat([torch.cat([nll for nll, _ in alone]), torch.cat([top for _, top in alone]).float()])
    rows = []
    for i, (prompt, template, subject) in enumerate(zip(PROMPTS, TEMPLATES, SUBJECTS)):
        if reader == "compute_ks":
            rows.append(compute_ks(model, tokenizer, 1, [template], [subject], ("{}", "Ed works as a doctor . {}")))
        elif reader == "subject_outputs":
            rows.append(subject_outputs(model, tokenizer, 1, [request(i, subject, "Paris", "Oslo", template, f"r{i}")]))
        elif reader == "preserved_hidden_states":
            rows.append(preserved_hidden_states(model, tokenizer, 1, [template], [subject]))
        else:
            rows.append(next_token_logits(model, tokenizer, [prompt]))
    return torch.cat(rows)


@pytest.mark.parametrize("reader", list(PADDING_READERS))
def test_batched_readers_give_the_same_result_for_either_padding_side(toy, reader):
    model, right, _, _ = toy
    left = left_padding(None)
    reference = one_at_a_time(reader, model, right)
    for tokenizer in (right, left):
        result = PADDING_READERS[reader](model, tokenizer)
        torch.testing.assert_close(result, reference, rtol=1e-5, atol=1e-5)


def test_course_model_left_padding_example_of_the_issue():
    """The issue's case: a left-padding tokenizer and prompts of different lengths gave a key off by
    3.26 and a true object's NLL of 3.37 instead of 0.046; now both sides agree with one prompt at a time."""
    model, tokenizer = load_model("course-gpt2", device="cpu")
    left = load_model("course-gpt2", device="cpu")[1]
    left.padding_side = "left"
    prompts, subjects = ["{} owns a", "At home, {} keeps a"], ["Belwyn", "Orsen"]
    alone = torch.cat([compute_ks(model, tokenizer, 1, [p], [s]) for p, s in zip(prompts, subjects)])
    torch.testing.assert_close(compute_ks(model, left, 1, prompts, subjects), alone, rtol=1e-5, atol=1e-5)
    filled = [p.format(s) for p, s in zip(prompts, subjects)]
    objects = ["rabbit", "snake"]
    nll_alone = torch.cat([target_scores(model, tokenizer, [p], [o])[0] for p, o in zip(filled, objects)])
    torch.testing.assert_close(target_scores(model, left, filled, objects)[0], nll_alone, rtol=1e-5, atol=1e-5)


# --- an object with its leading space ------------------------------------------------------------

@pytest.fixture(scope="module")
def byte_level():
    """A GPT-2-style byte-level BPE tokenizer (no unknown token: every string encodes) and a model."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(toy_corpus() * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                        unk_token="<|endoftext|>")
    return tokenizer, toy_model(tokenizer)


def test_an_object_with_a_leading_space_is_one_token_not_two(byte_level):
    tokenizer, model = byte_level
    assert tokenizer.convert_ids_to_tokens(tokenizer(" " + " Paris")["input_ids"]) == ["Ġ", "ĠParis"]  # the bug
    assert with_leading_space(" Paris") == with_leading_space("Paris") == " Paris"
    for target in ("Paris", " Paris"):
        inputs, labels = target_token_batch(tokenizer, ["Ava lives in"], [target], torch.device("cpu"))
        scored = inputs["input_ids"][labels != -100].tolist()
        assert tokenizer.convert_ids_to_tokens(scored) == ["ĠParis"], target
    assert object_token_id(tokenizer, " Paris") == object_token_id(tokenizer, "Paris")
    torch.testing.assert_close(target_scores(model, tokenizer, ["Ava lives in"], [" Paris"])[0],
                               target_scores(model, tokenizer, ["Ava lives in"], ["Paris"])[0])
    hparams = EditHyperParams(layers=(1,), v_num_grad_steps=2, v_lr=0.5, kl_factor=0.0625, v_weight_decay=0.5,
                              clamp_norm_factor=0.75)
    zs = [compute_z(model, tokenizer, {"prompt": "{} lives in", "subject": "Ava", "target_new": {"str": t}},
                    hparams).z for t in ("Paris", " Paris")]
    torch.testing.assert_close(zs[0], zs[1])


def test_a_byte_level_tokenizer_is_never_refused_for_unknown_words(byte_level):
    tokenizer, model = byte_level
    assert next_token_logits(model, tokenizer, ["Zorblax owns a goat"]).shape[0] == 1


def test_an_edit_to_the_true_object_is_refused(toy):
    model, tokenizer, _, _ = toy
    with pytest.raises(ValueError, match="target_new equals target_true \\('Paris'\\)"):
        EditRequest(0, "{} lives in", "Ava", " Paris", "Paris", "city")
    with pytest.raises(ValueError, match="the new object equals the true object \\('Paris'\\)"):
        compute_z(model, tokenizer, {"prompt": "{} lives in", "subject": "Ava", "target_new": {"str": "Paris"},
                                     "target_true": {"str": " Paris"}}, HPARAMS)
    with pytest.raises(ValueError, match="target_new is empty"):
        EditRequest(0, "{} lives in", "Ava", "  ", "Paris", "city")


# --- editors: layers, batches ---------------------------------------------------------------------

@pytest.mark.parametrize("layers", [(1, 0), (1, 1), (), (0, 1.5)])
def test_editors_refuse_layers_out_of_order_repeated_or_not_integers(toy, layers):
    model, tokenizer, _, c0 = toy
    spaces = {layer: null_space(c0[layer], RelativeRule(1e-2)) for layer in (0, 1)}
    builders = [
        lambda: MemitEditor(model, tokenizer, layers, fixed_targets, key_covariances=c0, covariance_weight=1.0),
        lambda: AlphaEditEditor(model, tokenizer, layers, fixed_targets, null_spaces=spaces, l2_weight=1.0),
        lambda: FineTuneEditor(model, tokenizer, layers, learning_rate=1e-2, steps=2, norm_constraint=1e-2),
    ]
    for build in builders:
        with pytest.raises((ValueError, TypeError), match=r"layers(\[1\])? (must be|is empty)"):
            build()


def test_a_batch_with_contradictory_requests_is_refused(toy):
    model, tokenizer, _, c0 = toy
    before = weights(model)
    editor = MemitEditor(model, tokenizer, LAYERS, fixed_targets, key_covariances=c0, covariance_weight=1.0)
    same_prompt = [request(3, "Ava", "Paris"), request(7, "Ava", "Oslo")]
    with pytest.raises(ValueError, match=r"contradictory requests for one fact: cases 3 and 7 .*'Paris' and .*'Oslo'"):
        editor.edit(same_prompt)
    same_relation = [request(3, "Ava", "Paris"), request(7, "Ava", "Oslo", prompt="The home town of {} is")]
    with pytest.raises(ValueError, match="contradictory"):
        editor.edit(same_relation)
    assert unchanged(model, before)
    # the same fact twice with the same object, and one subject's two relations, are fine
    editor.edit([request(3, "Ava", "Paris"), request(4, "Ava", " Paris"),
                 request(5, "Ava", "tea", "doctor", "{} likes", "likes")])
    editor.reset()
    assert unchanged(model, before)


def test_a_batch_must_be_a_list_of_edit_requests(toy):
    model, tokenizer, requests, c0 = toy
    editor = MemitEditor(model, tokenizer, LAYERS, fixed_targets, key_covariances=c0, covariance_weight=1.0)
    with pytest.raises(TypeError, match="wrap the single request in a list"):
        editor.edit(requests[0])
    with pytest.raises(TypeError, match=r"requests\[0\] is a dict, not an EditRequest: .*requests_from_counterfact"):
        editor.edit(toy_records(1))
    with pytest.raises(ValueError, match="the batch is empty"):
        editor.edit([])


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 0.0])
def test_editor_settings_are_refused_before_the_model_is_touched(toy, value):
    model, tokenizer, _, c0 = toy
    before = weights(model)
    spaces = {layer: null_space(c0[layer], RelativeRule(1e-2)) for layer in LAYERS}
    builders = {
        "learning_rate": lambda: FineTuneEditor(model, tokenizer, (1,), learning_rate=value, steps=2,
                                                norm_constraint=1e-2),
        "l2_weight": lambda: AlphaEditEditor(model, tokenizer, LAYERS, fixed_targets, null_spaces=spaces,
                                             l2_weight=value),
    }
    if value != 0.0:  # λ = 0 and ridge = 0 are allowed
        builders["covariance_weight λ"] = lambda: MemitEditor(model, tokenizer, LAYERS, fixed_targets,
                                                              key_covariances=c0, covariance_weight=value)
        builders["ridge"] = lambda: RomeEditor(model, tokenizer, 1, fixed_targets, key_covariance=c0[1], ridge=value)
    if value != math.inf:  # an infinite L∞ radius is unconstrained FT (Llama 3's official FT file)
        builders["norm_constraint"] = lambda: FineTuneEditor(model, tokenizer, (1,), learning_rate=1e-2, steps=2,
                                                             norm_constraint=value)
    for name, build in builders.items():
        with pytest.raises(ValueError, match=f"^{name} must be"):
            build()
    assert unchanged(model, before)


def test_an_infinite_ft_norm_constraint_means_unconstrained(toy):
    model, tokenizer, _, _ = toy
    editor = FineTuneEditor(model, tokenizer, (1,), learning_rate=1e-2, steps=2, norm_constraint=math.inf)
    assert editor.norm_constraint == math.inf


def test_alphaedit_editor_wants_null_spaces_of_the_right_dimension(toy):
    model, tokenizer, _, c0 = toy
    with pytest.raises(TypeError, match=r"null_spaces\[0\] must be a NullSpace .* alphaedit_update instead"):
        AlphaEditEditor(model, tokenizer, LAYERS, fixed_targets, null_spaces={0: c0[0], 1: c0[1]}, l2_weight=1.0)
    small = null_space(torch.eye(8) * torch.arange(8.0), AbsoluteRule(0.5))
    with pytest.raises(ValueError, match=r"null_spaces\[0\] has dimension 8 but block 0's keys have 64"):
        AlphaEditEditor(model, tokenizer, LAYERS, fixed_targets, null_spaces={0: small, 1: small}, l2_weight=1.0)


def test_a_nan_update_is_never_written_into_the_model(toy):
    model, _, _, _ = toy
    before = weights(model)
    bad = torch.full(tuple(weight_as_matrix(ffn_output(model, 1)).shape), float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite values; nothing was written"):
        apply_delta(model, 1, bad)
    assert unchanged(model, before)


# --- experiments: batch size, empty inputs ---------------------------------------------------------

@pytest.fixture(scope="module")
def probe():
    return GeneralAbilityProbe(["Ava lives in", "Bo lives in"], ["Paris", "Rome"], ["Ava lives in Paris ."])


@pytest.mark.parametrize(("batch_size", "error", "message"), [
    (-1, ValueError, "batch_size must be an integer ≥ 1, got -1"),
    (0, ValueError, "batch_size must be an integer ≥ 1, got 0"),
    (2.5, TypeError, "batch_size must be an integer"),
])
def test_run_sequential_editing_refuses_a_batch_size_below_one(toy, probe, batch_size, error, message):
    model, tokenizer, requests, c0 = toy
    editor = MemitEditor(model, tokenizer, LAYERS, fixed_targets, key_covariances=c0, covariance_weight=1.0)
    with pytest.raises(error, match=message):
        run_sequential_editing(editor, tokenizer, requests, batch_size, probe)


def test_run_sequential_editing_refuses_empty_and_contradictory_request_lists(toy, probe):
    model, tokenizer, requests, c0 = toy
    before = weights(model)
    editor = MemitEditor(model, tokenizer, LAYERS, fixed_targets, key_covariances=c0, covariance_weight=1.0)
    with pytest.raises(ValueError, match="requests must be a non-empty list .* unedited model's scores"):
        run_sequential_editing(editor, tokenizer, [], 2, probe)
    # the contradiction sits in the second batch: refused before the first batch is edited
    batches = requests[:2] + [request(10, "Ida", "Paris"), request(11, "Ida", "Oslo")]
    with pytest.raises(ValueError, match="contradictory"):
        run_sequential_editing(editor, tokenizer, batches, 2, probe)
    with pytest.raises(ValueError, match="every must be an integer ≥ 1"):
        run_sequential_editing(editor, tokenizer, requests, 2, probe, every=0)
    with pytest.raises(ValueError, match="edits must be an integer ≥ 1"):
        run_sequential_editing(editor, tokenizer, requests, 2, probe, edits=0)
    with pytest.raises(TypeError, match="editor must be an editor"):
        run_sequential_editing("MEMIT", tokenizer, requests, 2, probe)
    assert unchanged(model, before)


def test_empty_corpora_and_request_lists_get_clear_errors(toy):
    model, tokenizer, _, _ = toy
    with pytest.raises(ValueError, match="no prompts given: compute_ks needs at least one"):
        compute_ks(model, tokenizer, 1, [], [])
    with pytest.raises(ValueError, match="requests is empty: there is nothing to score"):
        counterfact_scores(model, tokenizer, [])
    with pytest.raises(ValueError, match="no prompts given: target_scores needs at least one"):
        target_scores(model, tokenizer, [], [])
    with pytest.raises(ValueError, match="got 2 prompts but 1 targets"):
        target_scores(model, tokenizer, ["Ava lives in", "Bo lives in"], ["Paris"])
    with pytest.raises(ValueError, match="texts is empty: perplexity needs at least one held-out text"):
        perplexity(model, tokenizer, [])
    with pytest.raises(ValueError, match="fact_prompts is empty"):
        GeneralAbilityProbe([], [], ["Ava lives in Paris ."])
    with pytest.raises(ValueError, match="heldout_texts is empty"):
        GeneralAbilityProbe(["Ava lives in"], ["Paris"], [])
    with pytest.raises(ValueError, match="fact_prompts has 1 prompts but fact_objects has 2"):
        GeneralAbilityProbe(["Ava lives in"], ["Paris", "Rome"], ["Ava lives in Paris ."])
    with pytest.raises(ValueError, match="context_templates must be a non-empty list"):
        TargetOptimizer(HPARAMS, ())


# --- state across experiments: an editor restores the model as loaded --------------------------------

@pytest.fixture
def bench():
    """A workbench over a tiny model "loaded" the way load_model records it."""
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer, seed=3)
    record_loaded_weights(model)
    stats = collect_key_statistics(model, tokenizer, list(LAYERS), toy_corpus())
    requests = requests_from_counterfact(toy_records(6))
    methods = replace(method_hparams_for("course-gpt2"), alphaedit_rule=RelativeRule(1e-2), rome_layer=1,
                      memit_covariance_weight=1.0, preserved_keys_weight=0.0)
    probe = GeneralAbilityProbe(["Ava lives in", "Bo lives in"], ["Paris", "Rome"], toy_corpus()[:4],
                                ["Gus lives in"], ["Oslo"])
    return Workbench("toy", model, tokenizer, None, requests, [], [], HPARAMS, methods, stats, probe, {},
                     TfidfVectorizer().fit(toy_corpus()), {"MEMIT": ("{}",), "ROME": ("{}",)})


def test_an_editor_built_after_another_experiment_restores_the_loaded_weights(bench):
    """The issue's case: MEMIT through run_sequential_editing, then wb.editor("AlphaEdit").reset()
    restored MEMIT's edited weights (‖W − W_loaded‖ stayed 4.96 / 23.0)."""
    loaded = {layer: weight_as_matrix(ffn_output(bench.model, layer)).detach().clone() for layer in LAYERS}
    memit = bench.editor("MEMIT")
    run_sequential_editing(memit, bench.tokenizer, bench.requests, 3, bench.probe)
    moved = {layer: float((weight_as_matrix(ffn_output(bench.model, layer)) - loaded[layer]).norm())
             for layer in LAYERS}
    assert min(moved.values()) > 1e-3  # MEMIT left its edits in the model
    alphaedit = bench.editor("AlphaEdit")
    assert alphaedit.weight_change() == pytest.approx(moved, rel=1e-5)  # measured against the loaded weights
    alphaedit.reset()
    for layer in LAYERS:
        assert torch.equal(weight_as_matrix(ffn_output(bench.model, layer)), loaded[layer]), layer


def test_unedited_scores_refuse_an_edited_model(bench):
    memit = bench.editor("MEMIT")
    memit.edit(bench.requests[:2])
    with pytest.raises(ModelAlreadyEditedError, match=r"the model holds edits \(blocks \[0, 1\].*reset\(\)"):
        bench.unedited_scores()
    bench.restore_loaded_weights()
    assert memit.weight_change() == {0: 0.0, 1: 0.0}


def test_an_editor_refuses_a_layer_edited_before_any_copy_was_kept():
    model, tokenizer = load_model("course-gpt2", device="cpu")
    with torch.no_grad():
        weight_as_matrix(ffn_output(model, 0)).add_(1e-3)  # changed by hand after loading
    with pytest.raises(ModelAlreadyEditedError, match="block 0's FFN output matrix was changed since the model was "
                                                      "loaded"):
        FineTuneEditor(model, tokenizer, (0,), learning_rate=1e-2, steps=2, norm_constraint=1e-2)
    editor = FineTuneEditor(model, tokenizer, (1,), learning_rate=1e-2, steps=2, norm_constraint=1e-2)
    assert editor.weight_change() == {1: 0.0}


def test_workbench_editor_refuses_unknown_methods_and_settings(bench):
    with pytest.raises(ValueError, match="unknown method 'memit'; choose one of"):
        bench.editor("memit")
    with pytest.raises(TypeError, match=r"unknown settings \['l2'\] .* alphaedit_l2"):
        bench.editor("AlphaEdit", l2=10.0)
    with pytest.raises(ValueError, match="alphaedit_l2 must be a finite number"):
        bench.editor("AlphaEdit", alphaedit_l2=float("nan"))


def test_names_and_cities_of_the_toy_world_are_known():
    """The toy tokenizer knows every word the tests above treat as known (so each refusal is the one asserted)."""
    tokenizer = toy_tokenizer()
    vocabulary = tokenizer.get_vocab()
    assert all(word in vocabulary for word in [*NAMES, *CITIES, *WORDS])
    assert "Zorblax" not in vocabulary and "unicorn" not in vocabulary and "ava" not in vocabulary


def test_a_layer_must_be_a_block_of_the_model(toy, bench):
    model, tokenizer, _, c0 = toy
    with pytest.raises(TypeError, match="layer must be an integer, got str"):
        ffn_output(model, "1")
    with pytest.raises(IndexError, match=r"layer 7 does not exist: the model has blocks 0..2"):
        MemitEditor(model, tokenizer, (0, 7), fixed_targets, key_covariances=c0, covariance_weight=1.0)
    with pytest.raises(ValueError, match=r"no key statistics for block 2: the workbench computed them for blocks "
                                         r"\[0, 1\]"):
        bench.editor("ROME", rome_layer=2)
