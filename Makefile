# Two entry points: `make repro` (the pipeline) and `make test` (the tests).
# Both create .venv from requirements.lock first, so a fresh machine needs only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install params repro test test-fast bench clean plots-offline ci-tools

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# dvc repro does not compose conf/, so bring params.yaml up to date first: conf/ plus your
# git-ignored conf/local/local.yaml (README: Local settings), plus one-off Hydra overrides
# (make repro OVERRIDES="train.lr=0.1"). The working params.yaml then holds them, as after
# `dvc exp run -S`; the committed one is conf/ alone (python -m pipeline.params --without-local).
params: $(STAMP)
	$(BIN)/python -m pipeline.params $(OVERRIDES)

# Stage commands call `python`: the one in .venv, so put it first on PATH.
repro: params
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# Tests on two pytest-xdist workers, each test file whole on one of them (its module fixtures are
# built once); TEST_WORKERS=0 runs them in this process. README: Tests.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(PYTEST)

# The tests that neither take seconds nor start a server, DVC, a browser or a signal (markers slow
# and integration, pyproject.toml): the math, the rules, the readers, the stages in-process.
test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not integration"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_tokenize.py
	$(BIN)/python benchmarks/bench_vs_gensim.py

clean:
	rm -rf $(VENV) .pytest_cache

# A shared MLflow tracking server on PostgreSQL, on 127.0.0.1:5000 (README: Sharing).
.PHONY: tracking-server
tracking-server: $(STAMP)
	scripts/tracking-server start

# `dvc plots show` writes dvc_plots/index.html from .dvc/offline-plots.html, which loads Vega from
# dvc_plots/vega/ instead of a CDN: fetch it once from the npm registry (git-ignored, ~1.2 MB).
VEGA_PACKAGES := vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0
VEGA_DIR      := dvc_plots/vega
plots-offline:
	mkdir -p $(VEGA_DIR)
	cd $(VEGA_DIR) && for package in $(VEGA_PACKAGES); do \
	  tarball=$$(npm pack --silent $$package) && \
	  tar xzf $$tarball --strip-components=2 --wildcards 'package/build/*.min.js' && rm $$tarball || exit 1; \
	done
	rm -f $(VEGA_DIR)/vega-core.min.js
	ls $(VEGA_DIR)

# What the browser and server tests need besides Python (CI runs this first; under CI=true a
# missing tool fails those tests instead of skipping them): Debian's chromium and PostgreSQL
# server, and Vega for the offline plots page.
ci-tools:
	command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql; }
	test -f $(VEGA_DIR)/vega.min.js || $(MAKE) plots-offline
