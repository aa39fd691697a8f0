"""The course plan: what each lesson teaches and which parts of the two papers it covers.

One place for the syllabus, so the README's table, the course index notebook and the guides in
``docs/`` cannot disagree (``python -m nullspace.course.pages`` writes the first two from it).
A lesson is matched to its notebook by number (``notebooks/NN_*.ipynb``), so a lesson can be
renamed without touching this file. Equation, table and figure numbers are the papers' own:
Adam-NSCL (Wang et al., CVPR 2021) and AlphaEdit (Fang et al., ICLR 2025).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nullspace.paths import NOTEBOOKS_DIR

__all__ = ["SYLLABUS", "Lesson", "lesson_notebook"]


@dataclass(frozen=True)
class Lesson:
    """One lesson of the course: its number, topic, objectives, the paper parts it covers and the
    length of a session that teaches it (minutes: reading, exercises and discussion; the
    instructor guide's plan for the lesson fits in it)."""

    number: int
    topic: str
    objectives: str
    papers: str
    session_minutes: int


SYLLABUS: tuple[Lesson, ...] = (
    Lesson(1, "The null space from first principles",
           "the right null space of X and of XᵀX; projectors U₂U₂ᵀ; why real covariances need a "
           "threshold rule (a·λmin, relative, energy)",
           "Adam-NSCL Eq. 5–6 and Fig. 3; AlphaEdit Eq. 8–10",
           90),
    Lesson(2, "The null space of a layer",
           "from one linear layer to a CNN; unfolding convolutions; the covariance accumulated "
           "across tasks; spectra of a trained CNN; old outputs stay put under a projected update",
           "Adam-NSCL Eq. 4–6, Figs. 1 and 3",
           110),
    Lesson(3, "Forgetting",
           "the task-incremental setting; the accuracy matrix, ACC, BWT and forgetting; "
           "fine-tuning forgets; EWC and LwF as baselines, and where they fall short (scrambled digits); "
           "what a diagonal penalty cannot see (mixed digits)",
           "Adam-NSCL's experimental protocol and baselines (its results table)",
           70),
    Lesson(4, "Adam-NSCL",
           "the optimizer that projects Adam's update; the paper's method and the course's variant "
           "against the baselines on scrambled and mixed digits; the threshold as the stability/plasticity "
           "knob; four quirks of the official code; the three-seed comparison",
           "Adam-NSCL Eq. 6, Figs. 2, 5 and 6, its results table and a-sweep",
           90),
    Lesson(5, "Knowledge in GPT-2's MLPs",
           "the FFN output matrix as a linear key–value memory; the course's fact world and "
           "small GPT-2; a causal trace; a first edit by least squares and its side effects",
           "AlphaEdit Eq. 1–2 and 5–6",
           120),
    Lesson(6, "Locate-then-edit: ROME and MEMIT",
           "from the least-squares edit to ROME and MEMIT; CounterFact-style metrics; what "
           "sequential editing does to MEMIT; a ROME edit and a MEMIT batch on the course model",
           "AlphaEdit Eq. 5–6 and 15; its evaluation protocol",
           150),
    Lesson(7, "AlphaEdit",
           "projecting the edit onto the null space of preserved keys; the one-line change from "
           "MEMIT; the guarantee measured; sequential MEMIT versus AlphaEdit on a linear associative "
           "memory and the key geometry that decides it; what goes into K0; the paper's protocol on "
           "the course model (2000 sequential edits, settings chosen on held-out requests, Table 1's "
           "MEMIT and Eq. 15's) from a cached run; the switch to GPT-2 XL",
           "AlphaEdit Eq. 8–15; Table 1, Fig. 4 and Fig. 5 analogues (benchmarks/editing.py)",
           100),
)


def lesson_notebook(lesson: Lesson, directory: Path = NOTEBOOKS_DIR) -> Path | None:
    """The solution notebook of ``lesson`` (``NN_*.ipynb``), or None while it is not written."""
    matches = sorted(directory.glob(f"{lesson.number:02d}_*.ipynb"))
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise ValueError(f"lesson {lesson.number} has several notebooks ({names}); keep one.")
    return matches[0] if matches else None
