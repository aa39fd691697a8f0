"""The fact world: deterministic, well-formed records, one token per name and object."""

import json

import numpy as np
import pytest

from nullspace.editing.keys import subject_token_index
from nullspace.editing.world.facts import (
    WORLD_DIR,
    generate_world,
    load_counterfact,
    load_general_text,
    load_world,
    load_zsre,
    save_world,
)
from nullspace.editing.world.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=5, n_people=60)


@pytest.fixture(scope="module")
def tokenizer(world):
    return build_tokenizer(world.vocabulary_words())


def test_same_seed_same_world_and_other_seed_other_world():
    a, b, c = generate_world(3, 40), generate_world(3, 40), generate_world(4, 40)
    assert a.people == b.people
    assert a.counterfact_records() == b.counterfact_records()
    assert [p.facts for p in a.people] != [p.facts for p in c.people]


def test_splits_have_the_requested_sizes(world):
    assert len({p.name for p in world.people}) == 60
    assert len(world.edit_people) == 36 and len(world.preserved_people) == 24
    assert len(world.bio_only_people) == 30


def test_biography_states_every_fact_once_in_varied_order(world):
    rng = np.random.default_rng(0)
    person = world.people[0]
    bios = [world.biography(person, rng) for _ in range(20)]
    for bio in bios:
        assert bio.count(".") == len(world.relations)
        for relation_id, obj in person.facts.items():
            assert f" {obj}." in bio, (relation_id, bio)
    assert len({bio.split(".")[0] for bio in bios}) > 3, "sentence order or templates never vary"


def test_bio_only_people_never_appear_in_question_texts(world):
    rng = np.random.default_rng(1)
    stream = world.training_documents(rng)
    bio_only = {p.name for p in world.bio_only_people}
    for _ in range(300):
        doc = next(stream)
        if doc.startswith("Q:"):
            assert not any(f" {name}" in doc for name in bio_only)


def test_counterfact_records_follow_the_schema(world):
    records = world.counterfact_records()
    assert len(records) == len(world.edit_people) * len(world.relations)
    assert [r["case_id"] for r in records] == list(range(len(records)))
    preserved = {p.name for p in world.preserved_people}
    for record in records:
        rewrite = record["requested_rewrite"]
        assert set(rewrite) == {"prompt", "subject", "target_new", "target_true", "relation_id"}
        assert rewrite["prompt"].count("{}") == 1
        person = world.person(rewrite["subject"])
        assert person.edit_pool
        assert rewrite["target_true"]["str"] == person.facts[rewrite["relation_id"]]
        assert rewrite["target_new"]["str"] != rewrite["target_true"]["str"]
        assert rewrite["target_new"]["str"] in world.relation(rewrite["relation_id"]).objects
        assert all(rewrite["subject"] in p for p in record["paraphrase_prompts"])
        for prompt in record["neighborhood_prompts"] + record["attribute_prompts"]:
            assert rewrite["subject"] not in prompt
            assert any(name in prompt.split() for name in preserved)
        for key in ("paraphrase_prompts", "neighborhood_prompts", "attribute_prompts", "generation_prompts"):
            assert isinstance(record[key], list)
    # round 0 picks relations with neighbours; later rounds take the rest (a 60-person world lacks some)
    first_round = records[:len(world.edit_people)]
    with_neighbours = sum(bool(r["neighborhood_prompts"]) for r in first_round)
    assert with_neighbours >= 0.9 * len(first_round), "most requests need neighbours for specificity"


def test_requests_cover_every_fact_of_the_edit_pool_once_in_rounds(world):
    records = world.counterfact_records()
    facts = [(r["requested_rewrite"]["subject"], r["requested_rewrite"]["relation_id"]) for r in records]
    assert len(set(facts)) == len(facts), "a fact is requested twice"
    assert set(facts) == {(p.name, rel.relation_id) for p in world.edit_people for rel in world.relations}
    pool = len(world.edit_people)
    for start in range(len(records) - pool + 1):  # any window as long as the pool: distinct subjects
        window = [subject for subject, _ in facts[start:start + pool]]
        assert len(set(window)) == pool
    # round 0 is one request per person, in the pool's order
    assert [subject for subject, _ in facts[:pool]] == [p.name for p in world.edit_people]


def test_every_shipped_request_has_neighbours_and_the_protocol_fits():
    records = load_counterfact()
    assert len(records) >= 2000 + 100, "AlphaEdit's protocol needs 2000 requests and a held-out set"
    assert all(r["neighborhood_prompts"] for r in records)


def test_zsre_records_follow_mends_schema_and_ask_the_same_requests(world):
    for cf, zs in zip(world.counterfact_records(), world.zsre_records(), strict=True):
        assert set(zs) == {"subject", "src", "pred", "rephrase", "alt", "answers", "loc", "loc_ans", "cond"}
        rewrite = cf["requested_rewrite"]
        assert zs["subject"] == rewrite["subject"] and zs["subject"] in zs["src"] and zs["subject"] in zs["rephrase"]
        assert zs["answers"] == [rewrite["target_new"]["str"]] == [zs["alt"]]  # the official edit inserts answers[0]
        assert zs["pred"] == rewrite["target_true"]["str"]
        assert zs["src"].endswith("A:")
        # the official loader asserts this, then appends "?" to loc
        assert zs["loc"].startswith("nq question: ") and not zs["loc"].endswith("?")
        assert zs["subject"] not in zs["loc"]


def test_general_text_mentions_only_preserved_people(world):
    edited = {p.name for p in world.edit_people}
    text = " ".join(world.general_text())
    assert not edited & set(text.replace(".", " ").split())


def test_every_name_and_object_is_one_token(world, tokenizer):
    for person in world.people:
        assert len(tokenizer(" " + person.name, add_special_tokens=False)["input_ids"]) == 1
    for relation in world.relations:
        for obj in relation.objects:
            ids = tokenizer(" " + obj, add_special_tokens=False)["input_ids"]
            assert len(ids) == 1 and ids[0] != tokenizer.unk_token_id, obj


def test_texts_have_no_unknown_tokens(world, tokenizer):
    rng = np.random.default_rng(2)
    stream = world.training_documents(rng)
    for _ in range(100):
        assert tokenizer.unk_token_id not in tokenizer(next(stream))["input_ids"]


def test_subject_position_points_at_the_name(world, tokenizer):
    person = world.people[3]
    for relation in world.relations:
        for prompt in (*relation.templates, *relation.questions):
            ids = tokenizer(prompt.format(person.name), add_special_tokens=False)["input_ids"]
            index = subject_token_index(tokenizer, prompt, person.name)
            assert tokenizer.convert_ids_to_tokens(ids[index]) == person.name


def test_save_and_load_round_trip(world, tmp_path):
    save_world(world, tmp_path)
    loaded = load_world(tmp_path)
    assert loaded.people == world.people and loaded.seed == world.seed
    assert load_counterfact(tmp_path) == json.loads(json.dumps(world.counterfact_records()))
    assert load_zsre(tmp_path) == world.zsre_records()
    assert load_general_text(tmp_path) == world.general_text()


def test_shipped_world_is_the_seeded_generation():
    shipped = load_world(WORLD_DIR)
    assert shipped.people == generate_world(shipped.seed, len(shipped.people)).people


@pytest.mark.bad_input
def test_bad_arguments_give_clear_errors(world):
    with pytest.raises(ValueError, match="at least 10"):
        generate_world(n_people=3)
    with pytest.raises(ValueError, match="strictly between"):
        generate_world(edit_share=1.0)
    with pytest.raises(KeyError, match="known relations|this world has"):
        world.relation("nonsense")
    with pytest.raises(FileNotFoundError, match="Generate one"):
        load_world(WORLD_DIR / "missing")
