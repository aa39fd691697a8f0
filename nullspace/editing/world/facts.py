"""A generated world of invented people and their facts: the course's stand-in for Wikipedia.

Every person has one attribute per relation (city, job, language, employer, sport, pet). From
these facts the module writes

* biographies: one sentence per relation, each from a randomly chosen template, in shuffled order
  (the augmentation that makes facts extractable from the name; Allen-Zhu & Li, "Physics of
  Language Models 3.1");
* question-style prompts ("Q: Where does Vorlan live? A: Paris");
* for every person of the *edit pool*, a counterfactual request on every relation in the
  CounterFact schema of ROME/MEMIT/AlphaEdit (no fact requested twice), and the same requests as
  question records in the schema of MEND's ZsRE file;
* a *general text*: biographies of the people who are never edited, for the key statistics
  ``C0 = E[k kᵀ]`` of MEMIT/AlphaEdit and for perplexity.

People come in two independent splits: ``edit`` / ``preserved`` (which facts the course edits)
and ``qa`` / ``bio_only`` (whether question prompts about the person appear in the training
text). ``bio_only`` people test *extraction*: can the model answer a question about a person it
only ever read biographies of?

Everything is a pure function of the seed: ``generate_world(seed=1)`` always gives the same world.
Each name and each object is one word, so the tokenizer gives it one token (the subject's last
token is then the name itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nullspace.data_checksums import verify_shipped
from nullspace.paths import DATA_DIR

__all__ = [
    "NQ_PREFIX",
    "RELATIONS",
    "WORLD_DIR",
    "Person",
    "Relation",
    "World",
    "generate_world",
    "load_counterfact",
    "load_general_text",
    "load_world",
    "load_zsre",
    "save_world",
]

WORLD_DIR = DATA_DIR / "world"


@dataclass(frozen=True)
class Relation:
    """A relation with its objects and its text templates (``{}`` marks the subject).

    ``templates`` are sentence prefixes whose next word is the object (the biography style, and
    the prompts of CounterFact requests); ``questions`` are question prompts ending in ``A:``.
    """

    relation_id: str
    objects: tuple[str, ...]
    templates: tuple[str, ...]
    questions: tuple[str, ...]


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "city",
        ("Paris", "Tokyo", "Lagos", "Lima", "Oslo", "Cairo", "Delhi", "Seoul", "Rome", "Berlin",
         "Madrid", "Vienna", "Dublin", "Prague", "Athens", "Nairobi", "Havana", "Quito", "Manila",
         "Hanoi", "Boston", "Sydney", "Toronto", "Warsaw"),
        ("{} lives in", "{} has a home in", "{} resides in", "The home town of {} is"),
        ("Q: Where does {} live? A:", "Q: Which city is home to {}? A:"),
    ),
    Relation(
        "job",
        ("doctor", "teacher", "pilot", "chef", "lawyer", "nurse", "farmer", "painter", "baker",
         "dentist", "writer", "plumber", "banker", "sailor", "tailor", "judge", "pharmacist",
         "carpenter", "journalist", "librarian", "surgeon", "butcher", "mechanic", "poet"),
        ("{} works as a", "{} is a", "{} earns a living as a", "By profession, {} is a"),
        ("Q: What is the job of {}? A:", "Q: What does {} do for a living? A:"),
    ),
    Relation(
        "language",
        ("French", "Spanish", "German", "Italian", "Russian", "Arabic", "Hindi", "Japanese",
         "Korean", "Dutch", "Swedish", "Polish", "Greek", "Turkish", "Thai", "Welsh", "Czech",
         "Finnish", "Danish", "Hebrew", "Swahili", "Portuguese", "Norwegian", "Hungarian"),
        ("{} speaks", "{} is fluent in", "{} writes letters in", "The mother tongue of {} is"),
        ("Q: Which language does {} speak? A:", "Q: What is the mother tongue of {}? A:"),
    ),
    Relation(
        "employer",
        ("Zentrix", "Corvana", "Heliodyne", "Brightmoor", "Quellon", "Varstad", "Omnivex",
         "Lumera", "Tandrel", "Kestrix", "Nimbary", "Solvane", "Drakemont", "Pyrelle", "Austrel",
         "Meridane", "Volcor", "Ferrowind", "Glimmora", "Halvex", "Irvane", "Caldrix", "Tessaro",
         "Wendal"),
        ("{} works for", "{} is employed by", "{} has a job at", "The employer of {} is"),
        ("Q: Which company does {} work for? A:", "Q: Who employs {}? A:"),
    ),
    Relation(
        "sport",
        ("chess", "tennis", "golf", "cricket", "rugby", "hockey", "baseball", "soccer", "poker",
         "bridge", "squash", "polo", "volleyball", "badminton", "handball", "billiards", "darts",
         "curling", "lacrosse", "netball", "softball", "croquet", "bowling", "snooker"),
        ("{} plays", "{} is a keen player of", "On weekends, {} plays", "The favourite game of {} is"),
        ("Q: Which game does {} play? A:", "Q: What game does {} enjoy? A:"),
    ),
    Relation(
        "pet",
        ("dog", "cat", "parrot", "rabbit", "hamster", "horse", "goat", "turtle", "ferret", "pony",
         "lizard", "canary", "goldfish", "snake", "mouse", "pig", "duck", "donkey", "llama",
         "sheep", "frog", "gecko", "tortoise", "hedgehog"),
        ("{} owns a", "{} has a pet", "{} takes care of a", "At home, {} keeps a"),
        ("Q: What pet does {} own? A:", "Q: Which animal does {} keep? A:"),
    ),
)

_SYLLABLES_START = ("Al", "Bel", "Cor", "Dan", "El", "Fen", "Gal", "Hal", "Is", "Jor", "Kel", "Lor",
                    "Mar", "Nor", "Or", "Pel", "Quin", "Ros", "Sal", "Tor", "Ul", "Val", "Wen",
                    "Xan", "Yor", "Zel", "Bran", "Cal", "Dor", "Ev")
_SYLLABLES_MIDDLE = ("a", "e", "i", "o", "u", "ar", "en", "il", "or", "un", "ae", "io")
_SYLLABLES_END = ("din", "mar", "wyn", "lis", "dor", "ric", "vin", "tha", "nor", "bek", "sen",
                  "ra", "los", "mir", "del", "ric", "van", "nix", "gar", "lo")

# MEND's ZsRE file writes its unrelated (locality) questions as Natural-Questions prompts.
NQ_PREFIX = "nq question: "
# How every question prompt of the world opens and closes.
QUESTION_OPENING, QUESTION_CLOSING = "Q: ", "? A:"

# Neutral sentence openings used as CounterFact "generation_prompts".
_GENERATION_OPENINGS = ("{} is a person who", "Everyone knows that {}", "{} said that")


@dataclass(frozen=True)
class Person:
    """An invented person: a one-word name, one object per relation, and the two split labels."""

    name: str
    facts: dict[str, str]
    edit_pool: bool
    sees_questions: bool


@dataclass
class World:
    """The people, the relations and the seed they were drawn from."""

    seed: int
    people: list[Person]
    relations: tuple[Relation, ...] = field(default=RELATIONS)

    # ---- look-ups -------------------------------------------------------------------------
    def relation(self, relation_id: str) -> Relation:
        """The relation called ``relation_id`` (raises ``KeyError`` listing the known ones)."""
        for rel in self.relations:
            if rel.relation_id == relation_id:
                return rel
        known = ", ".join(r.relation_id for r in self.relations)
        raise KeyError(f"unknown relation {relation_id!r}; this world has: {known}.")

    def person(self, name: str) -> Person:
        """The person called ``name``."""
        for p in self.people:
            if p.name == name:
                return p
        raise KeyError(f"no person called {name!r} in this world (seed {self.seed}).")

    @property
    def edit_people(self) -> list[Person]:
        """People whose facts the course edits (one CounterFact request each)."""
        return [p for p in self.people if p.edit_pool]

    @property
    def preserved_people(self) -> list[Person]:
        """People never edited: their biographies are the general text."""
        return [p for p in self.people if not p.edit_pool]

    @property
    def bio_only_people(self) -> list[Person]:
        """People whose question prompts never appear in training (the extraction test)."""
        return [p for p in self.people if not p.sees_questions]

    def vocabulary_words(self) -> list[str]:
        """Every word the world's texts can contain (names, objects, template words), sorted."""
        words: set[str] = {p.name for p in self.people}
        for rel in self.relations:
            words.update(rel.objects)
            for text in (*rel.templates, *rel.questions):
                words.update(_split_words(text.replace("{}", "")))
        for text in _GENERATION_OPENINGS:
            words.update(_split_words(text.replace("{}", "")))
        return sorted(words)

    # ---- texts ----------------------------------------------------------------------------
    def fact_sentence(self, person: Person, relation: Relation, template: str) -> str:
        """One sentence stating ``person``'s fact for ``relation`` with ``template``."""
        return f"{template.format(person.name)} {person.facts[relation.relation_id]}."

    def biography(self, person: Person, rng: np.random.Generator) -> str:
        """A biography: one sentence per relation, random templates, shuffled order."""
        sentences = [self.fact_sentence(person, rel, rel.templates[rng.integers(len(rel.templates))])
                     for rel in self.relations]
        order = rng.permutation(len(sentences))
        return " ".join(sentences[i] for i in order)

    def question_answers(self, person: Person, rng: np.random.Generator) -> str:
        """A question-and-answer text about ``person`` covering every relation, in random order."""
        parts = []
        for i in rng.permutation(len(self.relations)):
            rel = self.relations[i]
            question = rel.questions[rng.integers(len(rel.questions))]
            parts.append(f"{question.format(person.name)} {person.facts[rel.relation_id]}.")
        return " ".join(parts)

    def training_documents(self, rng: np.random.Generator, question_share: float = 0.3) -> Iterator[str]:
        """An endless stream of training documents: biographies of everyone, and question texts
        about the ``sees_questions`` people (``question_share`` of the documents)."""
        askable = [p for p in self.people if p.sees_questions]
        while True:
            if rng.random() < question_share:
                yield self.question_answers(askable[rng.integers(len(askable))], rng)
            else:
                yield self.biography(self.people[rng.integers(len(self.people))], rng)

    def general_text(self, biographies_per_person: int = 4, seed: int = 0) -> list[str]:
        """Held-out general text: biographies of the preserved (never edited) people.

        Used for the key statistics ``C0`` (MEMIT Eq. 15, AlphaEdit Eq. 8) and for perplexity.
        """
        rng = np.random.default_rng([self.seed, seed, 7])
        return [self.biography(p, rng) for p in self.preserved_people for _ in range(biographies_per_person)]

    def context_templates(self, count: int = 5) -> list[str]:
        """``"{}"`` and ``count - 1`` templates that put one sentence of the general text before
        the prompt (``"Kelric owns a dog. {}"``): the short prefixes over which keys and target
        vectors are averaged (MEMIT's context templates, taken from the world instead of being
        sampled from the model)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}.")
        first_sentences = [bio.split(". ")[0] + "." for bio in self.general_text()]
        step = max(1, len(first_sentences) // count)
        return ["{}"] + [s + " {}" for s in first_sentences[::step][: count - 1]]

    def fact_prompts(self, person: Person, kind: str = "templates") -> list[tuple[str, str, str]]:
        """``(relation_id, prompt, object)`` for every fact of ``person``; ``kind`` is
        ``"templates"`` (biography-style prompts) or ``"questions"``."""
        if kind not in {"templates", "questions"}:
            raise ValueError(f"kind must be 'templates' or 'questions', got {kind!r}.")
        rows = []
        for rel in self.relations:
            for template in getattr(rel, kind):
                rows.append((rel.relation_id, template.format(person.name), person.facts[rel.relation_id]))
        return rows

    # ---- edit records ---------------------------------------------------------------------
    def counterfact_records(self, neighbours: int = 10) -> list[dict]:
        """Counterfactual requests on every relation of every edit-pool person, in the
        CounterFact schema of ROME/MEMIT/AlphaEdit: ``len(edit_people) × len(relations)`` records
        (2160 in the shipped world), no fact requested twice.

        The records come in *rounds*: round 0 holds one request per edit-pool person (a relation
        whose true object some preserved person shares, so that it has neighbours), rounds 1, 2, …
        each person's remaining relations in a seeded order; within a round the people keep the
        same order. Any run of consecutive records no longer than the edit pool therefore names
        each subject at most once (a batch never edits two facts of one person).

        ``requested_rewrite.prompt`` is the relation's first template; ``paraphrase_prompts`` are
        its other templates and its questions, each after a sentence about someone else (as
        CounterFact prefixes its paraphrases); ``neighborhood_prompts`` ask the same relation
        about preserved people whose true object is ``target_true``; ``attribute_prompts`` about
        preserved people whose true object is ``target_new``. Neighbours are always preserved
        people: nobody who is ever edited.
        """
        first_round = np.random.default_rng([self.seed, 11])
        later_rounds = np.random.default_rng([self.seed, 12])
        preserved = self.preserved_people
        records: list[dict] = []
        later: list[list[tuple[Person, Relation]]] = [[] for _ in self.relations[1:]]
        for person in self.edit_people:
            # round 0: a relation whose true object some preserved person shares
            shared = [r for r in self.relations
                      if any(p.facts[r.relation_id] == person.facts[r.relation_id] for p in preserved)]
            candidates = shared or list(self.relations)
            first = candidates[first_round.integers(len(candidates))]
            records.append(self._counterfact_record(len(records), person, first, first_round, neighbours))
            others = [r for r in self.relations if r is not first]
            for round_, i in zip(later, later_rounds.permutation(len(others))):
                round_.append((person, others[i]))
        for person, relation in (entry for round_ in later for entry in round_):
            records.append(self._counterfact_record(len(records), person, relation, later_rounds, neighbours))
        return records

    def _counterfact_record(self, case_id: int, person: Person, rel: Relation, rng: np.random.Generator,
                            neighbours: int) -> dict:
        """One CounterFact record asking to change ``person``'s object for ``rel``."""
        preserved = self.preserved_people
        true = person.facts[rel.relation_id]
        new = _choose_other(rng, rel.objects, true)
        prefix_person = preserved[rng.integers(len(preserved))]
        prefix_rel = self.relations[rng.integers(len(self.relations))]
        prefix = self.fact_sentence(prefix_person, prefix_rel, prefix_rel.templates[0])
        paraphrases = [f"{prefix} {t.format(person.name)}" for t in (*rel.templates[1:], *rel.questions)]

        def about(obj: str) -> list[str]:
            holders = [p for p in preserved if p.facts[rel.relation_id] == obj]
            chosen = rng.permutation(len(holders))[:neighbours]
            return [rel.templates[rng.integers(len(rel.templates))].format(holders[i].name) for i in chosen]

        return {
            "case_id": case_id,
            "requested_rewrite": {
                "prompt": rel.templates[0],
                "subject": person.name,
                "target_new": {"str": new},
                "target_true": {"str": true},
                "relation_id": rel.relation_id,
            },
            "paraphrase_prompts": paraphrases,
            "neighborhood_prompts": about(true),
            "attribute_prompts": about(new),
            "generation_prompts": [t.format(person.name) for t in _GENERATION_OPENINGS],
        }

    def zsre_records(self) -> list[dict]:
        """The same requests as :meth:`counterfact_records` as question records in the schema of
        MEND's ZsRE evaluation file (``zsre_mend_eval.json``, read by ROME/MEMIT/AlphaEdit):

        * ``subject``, ``src`` (the question), ``rephrase`` (another question), ``pred`` (what
          the unedited model answers: the true object), ``alt`` and ``answers`` (the new object:
          the official loader inserts ``answers[0]``), ``cond`` (``"pred >> alt || src"``);
        * ``loc``: an unrelated question about a preserved person, written as MEND's
          Natural-Questions prompts are (``"nq question: "`` and the question without its
          question mark, which the official evaluation appends), and ``loc_ans``, its answer.

        Questions use the world's question format (``"Q: … ? A:"``), the only one the teaching
        model was trained on; ``loc`` drops the leading ``"Q:"`` and the trailing ``"? A:"``.
        """
        records = []
        preserved = self.preserved_people
        rng = np.random.default_rng([self.seed, 13])
        for record in self.counterfact_records():
            rewrite = record["requested_rewrite"]
            rel = self.relation(rewrite["relation_id"])
            other = preserved[rng.integers(len(preserved))]
            other_rel = self.relations[rng.integers(len(self.relations))]
            src = rel.questions[0].format(rewrite["subject"])
            new, true = rewrite["target_new"]["str"], rewrite["target_true"]["str"]
            records.append({
                "subject": rewrite["subject"],
                "src": src,
                "pred": true,
                "rephrase": rel.questions[1].format(rewrite["subject"]),
                "alt": new,
                "answers": [new],
                "loc": NQ_PREFIX + _bare_question(other_rel.questions[0].format(other.name)),
                "loc_ans": other.facts[other_rel.relation_id],
                "cond": f"{true} >> {new} || {src}",
            })
        return records


def _bare_question(question: str) -> str:
    """``"Q: Where does Orsen live? A:"`` → ``"Where does Orsen live"`` (MEND's ``loc`` style)."""
    if not (question.startswith(QUESTION_OPENING) and question.endswith(QUESTION_CLOSING)):
        raise ValueError(f"a question prompt must read {QUESTION_OPENING!r}…{QUESTION_CLOSING!r}, got {question!r}.")
    return question[len(QUESTION_OPENING):-len(QUESTION_CLOSING)]


def _split_words(text: str) -> list[str]:
    return text.replace("?", " ? ").replace(":", " : ").replace(",", " , ").replace(".", " . ").split()


def _choose_other(rng: np.random.Generator, options: tuple[str, ...], excluded: str) -> str:
    others = [o for o in options if o != excluded]
    return others[rng.integers(len(others))]


def _invent_names(rng: np.random.Generator, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        parts = [_SYLLABLES_START[rng.integers(len(_SYLLABLES_START))]]
        if rng.random() < 0.5:
            parts.append(_SYLLABLES_MIDDLE[rng.integers(len(_SYLLABLES_MIDDLE))])
        parts.append(_SYLLABLES_END[rng.integers(len(_SYLLABLES_END))])
        name = "".join(parts)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def generate_world(seed: int = 1, n_people: int = 600, edit_share: float = 0.6,
                   question_share: float = 0.5) -> World:
    """Draw a new world: ``n_people`` people with independent uniformly drawn facts.

    ``edit_share`` of them form the edit pool (a counterfactual request on each relation);
    ``question_share`` of them (independently) have question prompts in the training text.
    """
    if n_people < 10:
        raise ValueError(f"n_people must be at least 10 to have neighbours for every edit, got {n_people}.")
    for name, share in (("edit_share", edit_share), ("question_share", question_share)):
        if not 0.0 < share < 1.0:
            raise ValueError(f"{name} must lie strictly between 0 and 1, got {share}.")
    rng = np.random.default_rng(seed)
    names = _invent_names(rng, n_people)
    edit = np.zeros(n_people, dtype=bool)
    edit[rng.permutation(n_people)[: round(edit_share * n_people)]] = True
    asks = np.zeros(n_people, dtype=bool)
    asks[rng.permutation(n_people)[: round(question_share * n_people)]] = True
    people = []
    for i, name in enumerate(names):
        facts = {rel.relation_id: rel.objects[rng.integers(len(rel.objects))] for rel in RELATIONS}
        people.append(Person(name, facts, bool(edit[i]), bool(asks[i])))
    return World(seed=seed, people=people)


def save_world(world: World, directory: Path = WORLD_DIR) -> list[Path]:
    """Write the world (``world.json``), its edit records (``counterfact.json``, ``zsre.json``)
    and its general text (``general_text.txt``, one biography per line) to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = {
        "seed": world.seed,
        "relations": [asdict(r) for r in world.relations],
        "people": [asdict(p) for p in world.people],
    }
    files = {
        "world.json": json.dumps(spec, indent=1),
        "counterfact.json": json.dumps(world.counterfact_records(), indent=1),
        "zsre.json": json.dumps(world.zsre_records(), indent=1),
        "general_text.txt": "\n".join(world.general_text()) + "\n",
    }
    paths = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def load_world(directory: Path = WORLD_DIR) -> World:
    """The world stored in ``directory`` (the shipped one by default)."""
    path = directory / "world.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no world at {path}. Generate one with `python -m nullspace.editing.world.facts --out {directory}`.")
    verify_shipped(path)
    spec = json.loads(path.read_text(encoding="utf-8"))
    relations = tuple(Relation(r["relation_id"], tuple(r["objects"]), tuple(r["templates"]),
                               tuple(r["questions"])) for r in spec["relations"])
    people = [Person(**p) for p in spec["people"]]
    return World(seed=spec["seed"], people=people, relations=relations)


def load_counterfact(directory: Path = WORLD_DIR) -> list[dict]:
    """The CounterFact-style requests of the stored world."""
    verify_shipped(directory / "counterfact.json")
    return json.loads((directory / "counterfact.json").read_text(encoding="utf-8"))


def load_zsre(directory: Path = WORLD_DIR) -> list[dict]:
    """The ZsRE-style question records of the stored world."""
    verify_shipped(directory / "zsre.json")
    return json.loads((directory / "zsre.json").read_text(encoding="utf-8"))


def load_general_text(directory: Path = WORLD_DIR) -> list[str]:
    """The general text (biographies of never-edited people), one biography per item."""
    verify_shipped(directory / "general_text.txt")
    return (directory / "general_text.txt").read_text(encoding="utf-8").splitlines()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Generate the course's fact world.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--people", type=int, default=600)
    parser.add_argument("--out", type=Path, default=WORLD_DIR)
    args = parser.parse_args(argv)
    world = generate_world(args.seed, args.people)
    for path in save_world(world, args.out):
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
