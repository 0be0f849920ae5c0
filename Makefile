# cartwheel — the front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cartwheel-installed
# Where `make demo` puts its data (generated logs, clean tables, manifests, MLflow store).
DEMO_ROOT ?= $(CURDIR)/demo-data
PYTEST_ARGS ?=
# Two test processes, one test file each at a time: Spark, Horovod and subprocess start-up waits
# overlap, which shortens the run even on 2 cores. TEST_WORKERS=0 runs everything in-process.
TEST_WORKERS ?= 2
BENCH_ARGS ?=

.PHONY: help check-tools venv install demo test test-all lint typecheck bench package clean-demo

help: ## list the targets
	@echo "cartwheel: nightly batch recommendations on Apache Spark"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-11s %s\n", $$1, $$2}'
	@echo
	@echo "variables: PYTHON=$(PYTHON) VENV=$(VENV) DEMO_ROOT=$(DEMO_ROOT) TEST_WORKERS=$(TEST_WORKERS) PYTEST_ARGS=... BENCH_ARGS=..."

check-tools: ## fail clearly if Python 3.11 or Java 17 is missing
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; cartwheel needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); cartwheel needs Python 3.11" >&2; exit 1; }
	@java_bin=$${JAVA_HOME:+$$JAVA_HOME/bin/}java; command -v $$java_bin >/dev/null 2>&1 || { echo "error: java not found; cartwheel needs Java 17 for Spark 3.5 (install openjdk-17-jre-headless or set JAVA_HOME)" >&2; exit 1; }; \
	  major=$$($$java_bin -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n1); \
	  [ "$$major" = "17" ] || { echo "error: found Java $$major at $$(command -v $$java_bin); cartwheel needs Java 17 (set JAVA_HOME)" >&2; exit 1; }

$(PY):
	@$(MAKE) --no-print-directory check-tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel

venv: $(PY) ## create .venv (Python 3.11) if missing

$(STAMP): pyproject.toml .ci/build_horovod.sh | $(PY)
	@$(MAKE) --no-print-directory check-tools
	@echo "installing cartwheel and its pinned dependencies into $(VENV) (a few minutes the first time)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps "petastorm==$$($(PY) -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["tool"]["cartwheel"]["petastorm"])')"
	.ci/build_horovod.sh $(PY) "$$($(PY) -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["tool"]["cartwheel"]["horovod"])')"
	@# The one conflict DESIGN.md expects (petastorm's stale setuptools<70 pin); anything else fails.
	@problems=$$($(PY) -m pip check 2>&1 | grep -v -e 'petastorm 0.13.1 has requirement setuptools<70' -e '^No broken requirements' || true); \
	  if [ -n "$$problems" ]; then echo "$$problems" >&2; echo "error: pip check found broken requirements" >&2; exit 1; fi
	@touch $(STAMP)

install: $(STAMP) ## install everything into .venv (idempotent; Horovod wheel cached in ~/.cache/cartwheel)

demo: install ## generate a small log, run one night on it (clean .. rank .. publish), print what came out
	$(VENV)/bin/cartwheel demo --data-root $(DEMO_ROOT)

test: install ## run the test suite (unit + smoke, shuffled order; not slow or gpu)
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

test-all: install ## run every test tier, slow ones included
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

lint: install ## ruff over the code
	$(VENV)/bin/ruff check jobs pipelines udfs tests bench
	$(VENV)/bin/ruff format --check jobs pipelines udfs tests bench

typecheck: install ## mypy on jobs pipelines udfs
	$(VENV)/bin/mypy

bench: install ## run the benchmarks in bench/ (results in bench/results/; long: several hours on 2 cores)
	$(PY) bench/ingest_bench.py --keep $(BENCH_ARGS)
	$(PY) bench/generate_bench.py --rows 100000000 --days 30
	$(PY) bench/label_shard_bench.py $(BENCH_ARGS)
	$(PY) bench/train_bench.py
	$(PY) bench/warm_start_bench.py
	$(PY) bench/score_bench.py
	$(PY) bench/score_chunks.py
	$(PY) bench/score_precision.py
	$(PY) bench/user_state_bench.py --rows 10000000 --days 30
	$(PY) bench/vs_duckdb.py --rows 4000000
	$(PY) bench/clean_profile.py --root /tmp/cartwheel-vs-duckdb/vs-duckdb-4000000
	$(PY) bench/nightly_bench.py --rows 200000 1000000
	$(PY) bench/quality.py demo
	$(PY) bench/quality.py movielens
	$(PY) bench/quality.py taobao
	$(PY) bench/quality.py --table

package: install ## build dist/: the wheel, and the zip of jobs/ pipelines/ udfs/ for spark-submit --py-files
	rm -rf dist build
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	$(PY) -m jobs.runtime.pyfiles dist
	@ls -l dist

clean-demo: ## remove the demo data folder
	rm -rf $(DEMO_ROOT)
