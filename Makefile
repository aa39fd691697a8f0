# The course's commands. `make course` and `make test` are the two a newcomer needs;
# both create the pinned environment in .venv first (idempotent: re-running reuses it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Progress bars and warnings are switched off, as when the stored outputs were made.
QUIET := NULLSPACE_PROGRESS=0 PYTHONWARNINGS=ignore
# Torch's CPU threads in the tests (NULLSPACE_THREADS; CONTRIBUTING.md gives the measurement behind it).
THREADS ?= 1
TEST_ENV := $(QUIET) NULLSPACE_THREADS=$(THREADS)
# A stand-in for another machine: torch's portable kernels instead of AVX2/AVX-512, one thread,
# and MKL's conditional-numerical-reproducibility code path.
OTHER_MACHINE := ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MKL_CBWR=COMPATIBLE \
	NULLSPACE_THREADS=1
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900

.PHONY: course course-headless test test-unit test-notebooks test-portability test-browser browser-deps site \
	pages notebooks exercises benchmark install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the CPU build of torch first, so nothing pulls the CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Run the course: JupyterLab on the course index (open the printed URL in a browser).
## LAB_ARGS passes options to JupyterLab, e.g. make course LAB_ARGS="--no-browser --port=8890".
## As root (containers, cloud machines) JupyterLab refuses to start without --allow-root.
## It listens on 127.0.0.1 only, said explicitly so that a Jupyter config of the learner's cannot widen it.
course: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=. notebooks/00_course_index.ipynb $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

## Run the course headlessly: execute every lesson top to bottom into build/course/, with timings.
course-headless: $(STAMP)
	$(BIN)/python -m nullspace.course.execute

## Run every test: unit tests, exercise checks, browser checks, and every notebook under nbval.
test: $(STAMP) browser-deps
	$(TEST_ENV) $(BIN)/python -m pytest tests notebooks/[0-9]*.ipynb $(NBVAL)

test-unit: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest tests --ignore=tests/browser

## The browser checks alone: JupyterLab and the course site in headless Chromium (build/screenshots/).
test-browser: $(STAMP) browser-deps
	$(TEST_ENV) $(BIN)/python -m pytest tests/browser

## Debian's Chromium for the browser checks, installed only when missing (never a downloaded browser).
browser-deps:
	scripts/install_chromium.sh

## The static course site in build/site/, from the stored notebooks (nothing is executed).
site: $(STAMP)
	$(BIN)/python -m nullspace.course.site

## Refresh the README's syllabus table and the course index's lesson list.
pages: $(STAMP)
	$(BIN)/python -m nullspace.course.pages

test-notebooks: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest notebooks/[0-9]*.ipynb $(NBVAL)

## Every lesson under nbval again, as on another machine: the stored outputs must not depend on the CPU.
test-portability: $(STAMP)
	$(QUIET) $(OTHER_MACHINE) $(BIN)/python -m pytest notebooks/[0-9]*.ipynb $(NBVAL)

## Maintainers: re-execute the stored solution notebooks and regenerate the exercise notebooks.
notebooks: $(STAMP)
	$(BIN)/python -m nullspace.course.execute --in-place

exercises: $(STAMP)
	$(BIN)/python -m nullspace.course.exercises

## Run every benchmark script and time every lesson; writes benchmarks/RESULTS.md, which the README quotes.
benchmark: $(STAMP)
	$(BIN)/python benchmarks/run_all.py
