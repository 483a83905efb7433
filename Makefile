# One entry per routine job. `make test` is the README's test command in a venv.
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install lint format types test ci bench run sandbox

install:
	python3 -m venv $(VENV) && $(BIN)/pip install -e '.[test]'

lint:
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench

format:
	$(BIN)/ruff format src tests bench && $(BIN)/ruff check --fix src tests bench

types:
	$(BIN)/mypy src

test:
	$(BIN)/pytest

ci:
	bash .ci/run

bench:
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

run:
	$(BIN)/callbridge serve

sandbox:
	$(BIN)/callbridge sandbox
