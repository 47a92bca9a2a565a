# Two entry points for a fresh machine: `make demo` (main job) and `make test` (the test suite).
# Override TORCH to install another build first, e.g. a CUDA one (see README).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup data postgres chromium zoo demo test lint typecheck pytest reproduce benchmarks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[sweep,postgres,cli,dev]"
	touch $(STAMP)

setup: $(STAMP) data

data:
	bash scripts/install_data.sh

postgres:
	bash scripts/install_postgres.sh

chromium:
	bash scripts/install_chromium.sh

zoo: $(STAMP)
	PIP=$(BIN)/pip bash scripts/install_zoo.sh

demo: setup
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/lightning-compress sweep sweeps/lenet300_fmnist.yaml --workers 2

lint: setup
	$(BIN)/ruff check lightning_compress tests benchmarks tools
	$(BIN)/ruff format --check lightning_compress tests benchmarks tools
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy lightning_compress benchmarks tools

pytest: setup postgres chromium zoo
	$(BIN)/python -m pytest

# one seed-0 cell of every row of the README's and RESULTS.md's tables, re-run and compared
reproduce: setup
	$(BIN)/python benchmarks/reproduce.py --workers 2

test: lint typecheck pytest reproduce

clean:
	rm -rf $(VENV) .zoo .pytest_cache .mypy_cache .ruff_cache runs
