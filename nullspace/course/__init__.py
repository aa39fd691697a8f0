"""Course tooling: exercise verdicts and checks, the exercise-notebook generator, the executor."""
