# The two set-up commands of the README: `make demo` and `make test`. Both create the virtual
# environment in .venv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make demo` installs only what the demo needs (the test extras include it).
DEMO_STAMP := $(VENV)/.installed-demo
# The torch / torchvision pair that lies on this machine's disk (a bare `torch` would download).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: all venv browser test lint demo bench clean

all: test

# $(call install,EXTRAS): the virtual environment with torch and the package's EXTRAS.
define install
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[$(1)]"
endef

TEST_EXTRAS := test,lint

$(STAMP): pyproject.toml
	$(call install,$(TEST_EXTRAS))
	touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	$(call install,demo)
	touch $(DEMO_STAMP)

venv: $(STAMP)

# The report's browser test drives Debian's chromium (Playwright's own download fails offline).
# Installed here when missing; where it cannot be, the browser test skips and says so loudly.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || echo "!!! chromium could not be installed: the browser tests will be SKIPPED !!!"; }

test: $(STAMP) browser
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy src/rarity_score

# The paper's two findings on MNIST, offline (docs/demo.md); a second run reuses the features.
demo: $(DEMO_STAMP)
	$(VENV)/bin/rarity demo --out demo-output

# The benchmarks also measure the peers a user would pick instead (faiss, torch-fidelity, prdc).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_extract.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
