"""How much code the learner writes: solution lines and ★★★ exercises per lesson.

A solution line is a line between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in an exercise
cell that is neither blank nor a comment. Run ``python -m nullspace.course.solution_lines``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from nullspace.course.exercises import exercise_cells, lessons_with_exercises

__all__ = ["LessonCount", "count_solution_lines", "lesson_counts"]


@dataclass(frozen=True)
class LessonCount:
    """Exercises, solution lines and ★★★ exercises of one lesson."""

    lesson: str
    exercises: int
    solution_lines: int
    hardest: int


def count_solution_lines(source: str) -> int:
    """Non-blank, non-comment lines inside the solution regions of an exercise cell."""
    count, inside = 0, False
    for line in source.splitlines():
        if "BEGIN SOLUTION" in line:
            inside = True
        elif "END SOLUTION" in line:
            inside = False
        elif inside and line.strip() and not line.strip().startswith("#"):
            count += 1
    return count


def lesson_counts() -> list[LessonCount]:
    """One :class:`LessonCount` per lesson with exercises, in teaching order."""
    counts = []
    for path in lessons_with_exercises():
        exercises = exercise_cells(path)
        counts.append(LessonCount(path.name[:2], len(exercises),
                                  sum(count_solution_lines(ex.solution_source) for ex in exercises),
                                  sum(ex.header.difficulty == 3 for ex in exercises)))
    return counts


def main() -> int:
    counts = lesson_counts()
    print(f"{'lesson':>6} {'exercises':>9} {'solution lines':>14} {'★★★':>4}")
    for c in counts:
        print(f"{c.lesson:>6} {c.exercises:>9} {c.solution_lines:>14} {c.hardest:>4}")
    print(f"{'course':>6} {sum(c.exercises for c in counts):>9} {sum(c.solution_lines for c in counts):>14} "
          f"{sum(c.hardest for c in counts):>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
