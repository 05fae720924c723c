"""Shared fixtures: the embedded model, loaded once per test session, and an offline Hub."""

import json
import os
import subprocess
import sys
from pathlib import Path

# Tests never touch the network: Hub lookups fail fast instead of retrying.
os.environ["HF_HUB_OFFLINE"] = "1"
# As `pts` itself does before huggingface_hub is imported: otherwise a Trainer (which re-enables hub progress
# bars when it finishes) makes later in-process CLI calls print weight-loading bars to stderr.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# Under pytest-xdist (`make test` runs workers) the cores are shared out among the workers and the `pts`
# processes they start: processes that each take a thread per core oversubscribe the machine and run several
# times slower.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _threads = str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.setdefault("OMP_NUM_THREADS", _threads)
    os.environ.setdefault("MKL_NUM_THREADS", _threads)

import pytest  # noqa: E402

# Fixtures shared by several test modules: the fake Hub and a file of every format (hub_samples), one small real
# run and the original tool's shape of it (export_samples).
pytest_plugins = ["hub_samples", "export_samples"]

# The order in which pytest-xdist hands out whole files (`make test`: --dist loadfile --no-loadscope-reorder).
# Longest first, so no worker is left with a long file at the end; the export tests' shared real run
# (export_samples.real) is built by the first file here while the other worker takes the next ones, and the
# other files that use it come last, when it is built, instead of waiting minutes on its lock.
FIRST = ("test_export_dpo.py", "test_models.py", "test_e2e.py", "test_ray.py", "test_baseline_engine.py")
LAST = ("test_export.py", "test_export_control_vector.py", "test_export_steering.py", "test_view_browser.py")


def pytest_collection_modifyitems(items):
    for item in items:  # `slow` means the real model: every test that loads it through a fixture is marked
        if "embedded_loaded" in item.fixturenames:
            item.add_marker(pytest.mark.slow)

    def rank(item):
        name = item.path.name
        if name in FIRST:
            return FIRST.index(name)
        return len(FIRST) + 1 + LAST.index(name) if name in LAST else len(FIRST)

    items.sort(key=rank)  # stable: the order inside a file, and among the other files, is pytest's


def tiny_llama_config(vocab_size: int):
    """A one-layer Llama of width 8 over ``vocab_size`` tokens: enough for TRL and transformers to train a step on a
    real tokenizer's ids without loading real weights."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
    )


def session_folder(tmp_path_factory) -> Path:
    """A folder of this test session that every pytest-xdist worker sees (a worker's own base folder's parent);
    without xdist, the session's base folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def model_cache_dir(tmp_path_factory):
    """``PTS_CACHE_DIR`` for the session, so the GGUF is dequantized once and reused by every test.

    Set ``PTS_TEST_CACHE_DIR`` to keep that cache between sessions (saves ~20 s a run). pytest-xdist workers share
    one cache in the session's common folder (the cache's writes are atomic renames), so each model is converted
    once per session rather than once per worker.
    """
    path = os.environ.get("PTS_TEST_CACHE_DIR") or str(session_folder(tmp_path_factory) / "pts-cache")
    old = os.environ.get("PTS_CACHE_DIR")
    os.environ["PTS_CACHE_DIR"] = path
    yield path
    if old is None:
        os.environ.pop("PTS_CACHE_DIR", None)
    else:
        os.environ["PTS_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def embedded_loaded(model_cache_dir, tmp_path_factory):
    """The embedded SmolLM2-135M-Instruct as a :class:`pts.models.LoadedModel`, in float32 on CPU (exact log-probs)."""
    from filelock import FileLock

    from pts.models import load_model

    # One worker converts the GGUF while the others wait for the cache instead of converting it too.
    with FileLock(str(session_folder(tmp_path_factory) / "smollm2-135m.lock")):
        return load_model("smollm2-135m", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def embedded_model(embedded_loaded):
    """``(model, tokenizer, model_id)`` of the embedded model, shared by all tests; do not modify it."""
    return embedded_loaded.model, embedded_loaded.tokenizer, embedded_loaded.model_id


@pytest.fixture(scope="session")
def embedded_engine(embedded_loaded):
    """An :class:`pts.engines.hf.HFEngine` on the embedded model (batch_size 64)."""
    from pts.engines.hf import HFEngine

    return HFEngine.from_loaded(embedded_loaded, batch_size=64)


@pytest.fixture(scope="session")
def chat_prompt(embedded_model):
    """``chat_prompt(text)``: token ids of a one-turn SmolLM2 chat prompt, ready for the assistant's reply."""
    _, tok, _ = embedded_model

    def build(text: str) -> tuple[int, ...]:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, return_dict=False
        )
        return tuple(ids)

    return build


def run_pts(*args, cwd, env=None, timeout=600, inherit_env=True):
    """``pts ARGS`` in a new process, as a user types it; its CompletedProcess (text output captured).

    Offline; ``env`` is added to this process's environment, or with ``inherit_env=False`` is the whole of it.
    """
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})} if inherit_env else dict(env)
    return subprocess.run(
        [sys.executable, "-m", "pts", *map(str, args)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_jsonl(path, rows):
    """Write ``rows`` to ``path`` as JSON lines (UTF-8, non-ASCII kept); returns ``path``."""
    path = Path(path)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def pts_cli():
    """:func:`run_pts`: the ``pts`` command in a new process, as a user types it."""
    return run_pts
