# The course's commands. `make course` and `make test` are the two a newcomer needs;
# both create the pinned environment in .venv first (idempotent: re-running reuses it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Progress bars and warnings are switched off, as when the stored outputs were made.
QUIET := NULLSPACE_PROGRESS=0 PYTHONWARNINGS=ignore
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900

.PHONY: course course-headless test test-unit test-notebooks notebooks exercises benchmark install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the CPU build of torch first, so nothing pulls the CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Run the course: JupyterLab on the course index (open the printed URL in a browser).
course: $(STAMP)
	$(BIN)/jupyter lab notebooks/00_course_index.ipynb

## Run the course headlessly: execute every lesson top to bottom into build/course/, with timings.
course-headless: $(STAMP)
	$(BIN)/python -m nullspace.course.execute

## Run every test: unit tests, exercise checks, and every notebook under nbval.
test: $(STAMP)
	$(QUIET) $(BIN)/python -m pytest tests notebooks/[0-9]*.ipynb $(NBVAL)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests

test-notebooks: $(STAMP)
	$(QUIET) $(BIN)/python -m pytest notebooks/[0-9]*.ipynb $(NBVAL)

## Maintainers: re-execute the stored solution notebooks and regenerate the exercise notebooks.
notebooks: $(STAMP)
	$(BIN)/python -m nullspace.course.execute --in-place

exercises: $(STAMP)
	$(BIN)/python -m nullspace.course.exercises

## Print the figures the README quotes.
benchmark: $(STAMP)
	$(BIN)/python benchmarks/run_all.py
