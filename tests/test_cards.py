"""Dataset cards of every format: fields, glossary, counts, and the usage snippets and commands they print, run."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jsonl
from consumers import optillm_autothink
from hub_samples import REPO, TOKEN, code_blocks, hub_env, pair_record, parse_card

from pts.errors import PTSError
from pts.formats.base import OPAQUE_FIELDS
from pts.formats.dpo import TRL_IDS_TRAINER
from pts.formats.pivotal import reconstructed_command
from pts.hub import build_card, inspect_file, push_dataset, size_category
from pts.records import ORIGINAL_FIELDS, FirstToken, PivotalToken

# A fresh `datasets` cache per test (see hub_samples.datasets_cache).
pytestmark = pytest.mark.usefixtures("datasets_cache")

# --------------------------------------------------------------------------------------------------
# Cards


@pytest.mark.parametrize(
    "fixture",
    ["pivotal_file", "original_file", "dpo_file", "dpo_chat_file", "steering_file", "critical_file", "gguf_file"],
)
def test_glossary_describes_every_field(request, fixture):
    path = request.getfixturevalue(fixture)
    card, _ = parse_card(build_card(path, repo_id=REPO))
    section = card.text.split("## Fields")[1].split("## Usage")[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| (.+) \|$", section, re.MULTILINE)
    if path.suffix == ".gguf":
        import gguf

        reader = gguf.GGUFReader(str(path))
        expected = {t.name for t in reader.tensors} | {k for k in reader.fields if not k.startswith("GGUF.")}
    else:
        expected = set()
        for line in path.read_text().splitlines():
            row = json.loads(line)
            expected |= set(row)
            for key, value in row.items():
                if isinstance(value, dict) and key not in OPAQUE_FIELDS:  # maps keyed by layer number
                    expected |= {f"{key}.{k}" for k in value}
                elif isinstance(value, list) and value and isinstance(value[0], dict):
                    expected |= {f"{key}.{k}" for k in value[0]}
    assert {name for name, _, _ in rows} == expected
    undescribed = [name for name, _, text in rows if "Not described" in text]
    assert undescribed == []


def test_size_category_follows_hub_labels():
    assert [size_category(n) for n in (0, 1, 999, 1000, 9999, 10_000, 123_456, 5_000_000, 2 * 10**12)] == [
        "n<1K",
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
        "n>1T",
    ]


def test_detects_each_format(pivotal_file, original_file, dpo_file, steering_file, critical_file, gguf_file):
    got = {
        p.name: inspect_file(p).fmt
        for p in (pivotal_file, original_file, dpo_file, steering_file, critical_file, gguf_file)
    }
    assert got == {
        "pivotal_tokens.jsonl": "pivotal",
        "original.jsonl": "pivotal",
        "dpo_pairs.jsonl": "dpo",
        "steering_vectors.jsonl": "steering",
        "critical_tokens.jsonl": "critical",
        "control_vector.gguf": "control-vector",
    }
    assert inspect_file(original_file).original_tool and not inspect_file(pivotal_file).original_tool


def test_pivotal_card(pivotal_file, tmp_path):
    card, meta = parse_card(build_card(pivotal_file, repo_id=REPO))
    assert meta["license"] == "apache-2.0"
    assert meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation"]
    assert {"pts", "pivotal-tokens"} <= set(meta["tags"])
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "pivotal_tokens.jsonl"}]}
    ]
    assert "smollm2-135m-instruct-q4_1" in meta["pretty_name"]
    text = card.text
    assert "| Pivotal tokens | 3 |" in text
    assert "| Positive / negative | 2 / 1 |" in text
    assert "| Questions (tasks) | 2 |" in text
    # Every field of the file, nested ones included, has a glossary row with a real description.
    for name in list(json.loads(pivotal_file.read_text().splitlines()[0])) + [
        "first_tokens.successes",
        "search.num_samples",
    ]:
        row = re.search(rf"^\| `{re.escape(name)}` \| [^|]+ \| (.+) \|$", text, re.MULTILINE)
        assert row and "Not described" not in row.group(1), name
    # No command given: the run options recorded in the records are shown, and they parse as `pts run` flags.
    cmd = reconstructed_command(inspect_file(pivotal_file))
    assert cmd in text and "--num-samples 8" in cmd and "--prob-threshold 0.2" in cmd
    from pts.cli import build_parser

    args = build_parser().parse_args(shlex.split(cmd)[1:])
    assert (
        args.dataset == "rg:chain_sum?size=3" and args.temperature == 0.6 and args.model == "smollm2-135m-instruct-q4_1"
    )
    # Given one, the generating command is shown instead.
    card2, _ = parse_card(build_card(pivotal_file, command="pts run --dataset gsm8k --num-samples 32", repo_id=REPO))
    assert "pts run --dataset gsm8k --num-samples 32" in card2.text


def test_original_tool_file_card(original_file):
    card, meta = parse_card(build_card(original_file, model="Qwen/Qwen3-0.6B", repo_id=REPO))
    assert "original PTS tool" in card.text
    assert "`Qwen/Qwen3-0.6B`" in card.text and meta["pretty_name"] == "Pivotal tokens (Qwen/Qwen3-0.6B)"
    assert "| Positive / negative | 1 / 1 |" in card.text
    for name in ORIGINAL_FIELDS:
        assert f"| `{name}` |" in card.text


def test_dpo_card_and_its_load_snippet_runs(dpo_file, tmp_path):
    card, meta = parse_card(build_card(dpo_file, repo_id=REPO))
    assert {"pts", "pivotal-tokens", "dpo"} <= set(meta["tags"])
    assert "| Preference pairs | 3 |" in card.text
    assert "| Pairs from positive / negative pivots | 2 / 1 |" in card.text
    assert "| Counterparts verified with the oracle | 3 of 3 |" in card.text
    assert "| Pairs TRL tokenizes exactly as measured | 2 of 3 |" in card.text
    assert "| Questions (tasks) | 3 |" in card.text
    for name in ("prompt", "chosen", "rejected", "metadata.prob_chosen", "metadata.counterpart_verified"):
        assert f"| `{name}` |" in card.text
    blocks = code_blocks(card.text, "python")
    train = next(b for b in blocks if "DPOTrainer" in b)
    assert 'model_id = "HuggingFaceTB/SmolLM2-135M-Instruct"' in train  # the Hub id, not pts's quantized alias
    assert f'load_dataset("{REPO}", split="train")' in train and "processing_class=tokenizer" in train
    # the rows carry the measured ids, so the card trains on them (tests/test_export.py trains with this class)
    assert TRL_IDS_TRAINER in train and "trainer = TokenIdsDPOTrainer(" in train and "max_length=None" in train
    compile(train, "train-snippet", "exec")
    # The repo as the Hub would hold it: the data file and the card. `load_dataset` on that folder reads the
    # card's `configs` the way it does for a Hub repo; run the card's load snippet (and the loading line of the
    # TRL snippet) against it.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dpo_pairs.jsonl").write_bytes(dpo_file.read_bytes())
    (repo / "README.md").write_text(str(card))
    (repo / "stray.jsonl").write_text('{"unrelated": 1}\n')  # only `configs` decides which file is the data
    load = blocks[0].replace(REPO, str(repo))
    scope: dict = {}
    exec(load, scope)  # noqa: S102 - the card's own snippet
    ds = scope["dataset"]
    assert ds.num_rows == 3 and ds.column_names == [
        "prompt",
        "chosen",
        "rejected",
        "prompt_ids",
        "chosen_ids",
        "rejected_ids",
        "metadata",
    ]
    assert ds[0]["chosen"] == " 3" and ds[0]["metadata"]["prob_chosen"] == 0.875
    line = next(x for x in train.splitlines() if "load_dataset(" in x and "=" in x)
    scope = {}
    exec("from datasets import load_dataset\n" + line.replace(REPO, str(repo)), scope)  # noqa: S102
    assert scope["dataset"].num_rows == 3


def _embeddedpivot_record(tok, question: str, pivot: str, counterpart: str, positive: bool) -> PivotalToken:
    """A pivotal-token record on the embedded model's own token ids: its chat prompt for ``question``, the response
    "The answer is " so far, then the single digit token ``pivot``; the search's rollouts also began with the digit
    ``counterpart`` (the measured alternative pts export pairs it with)."""
    prompt = list(
        tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, return_dict=False)
    )
    ids = prompt + tok.encode("The answer is ", add_special_tokens=False)
    (pivot_id,), (counterpart_id,) = (tok.encode(t, add_special_tokens=False) for t in (pivot, counterpart))
    after, other = (7, 0) if positive else (1, 6)  # successes of 8 rollouts after the pivot, of 6 after the other
    return PivotalToken(
        model_id="smollm2-135m-instruct-q4_1",
        query=question,
        pivot_context=tok.decode(ids, skip_special_tokens=False),
        pivot_token=pivot,
        pivot_token_id=pivot_id,
        prob_before=0.5,
        prob_after=after / 8,
        prob_delta=after / 8 - 0.5,
        is_positive=positive,
        task_type="chain_sum",
        dataset_id="rg:chain_sum",
        dataset_item_id=question,
        pivot_context_ids=ids,
        prompt_length=len(prompt),
        samples_before=8,
        successes_before=4,
        samples_after=8,
        successes_after=after,
        first_tokens=[FirstToken(pivot_id, pivot, 8, after), FirstToken(counterpart_id, counterpart, 6, other)],
        position=len(ids) - len(prompt),
    )


@pytest.mark.slow
@pytest.mark.parametrize("chat", [False, True], ids=["token-ids", "conversational"])
def test_dpo_card_train_snippet_runs_one_trl_step(embedded_loaded, tmp_path, monkeypatch, chat):
    """The DPO card's "Train with TRL" snippet, executed whole as the card prints it, on a file `pts export` wrote
    (plain with token ids, or `--chat`) from records in the embedded model's token ids. Only three things change,
    each textually and exactly once: the Hub dataset repo becomes a local folder laid out as that repo, the Hub
    model id the embedded model's local Hugging Face directory (the same SmolLM2-135M-Instruct weights, dequantized
    from pts's GGUF), and DPOConfig gets what one offline CPU step needs."""
    from trl import DPOTrainer

    from pts.jobs.export import ExportConfig
    from pts.jobs.export import run as export
    from pts.models import gguf_cache_dir, resolve_alias
    from pts.store import read_jsonl

    tok = embedded_loaded.tokenizer
    records = [
        _embeddedpivot_record(tok, "What is 1 + 2?", "3", "9", positive=True),
        _embeddedpivot_record(tok, "What is 2 + 2?", "5", "4", positive=False),
    ]
    pivots = write_jsonl(tmp_path / "pivotal_tokens.jsonl", [r.to_dict() for r in records])
    data = tmp_path / "dpo_pairs.jsonl"
    export(ExportConfig(input_path=str(pivots), format="dpo", output_path=str(data), chat=chat), loaded=embedded_loaded)
    rows = read_jsonl(data)
    assert [(m["chosen_token_id"], m["rejected_token_id"]) for m in (r["metadata"] for r in rows)] == [
        tuple(tok.convert_tokens_to_ids(t) for t in pair) for pair in (("3", "9"), ("4", "5"))
    ]

    card, _ = parse_card(build_card(data, repo_id=REPO))
    train = next(b for b in code_blocks(card.text, "python") if "DPOTrainer" in b)
    assert ("trainer = TokenIdsDPOTrainer(" in train) != chat
    repo = tmp_path / "repo"  # the dataset repo as the Hub would hold it: the data file and the card
    repo.mkdir()
    (repo / data.name).write_bytes(data.read_bytes())
    (repo / "README.md").write_text(str(card))
    model_dir = gguf_cache_dir(resolve_alias("smollm2-135m").locate())  # written by load_model (embedded_loaded)
    assert (model_dir / "config.json").is_file()
    # save_strategy="no": at the last step Trainer would otherwise save a checkpoint (weights and optimizer state,
    # over 1 GB) that nothing here reads. Nothing else is needed offline: the reference model TRL builds is loaded
    # from the model's own path, the local directory.
    config = (
        f"DPOConfig(output_dir={str(tmp_path / 'trl')!r}, max_steps=1, use_cpu=True, report_to=[], "
        f"per_device_train_batch_size=2, save_strategy='no', logging_steps=1"
    )
    for old, new in (
        (f'load_dataset("{REPO}"', f"load_dataset({str(repo)!r}"),
        ('model_id = "HuggingFaceTB/SmolLM2-135M-Instruct"', f"model_id = {str(model_dir)!r}"),
        ('DPOConfig(output_dir="dpo-pivotal-tokens"', config),
    ):
        assert train.count(old) == 1, old
        train = train.replace(old, new)

    batches = []  # what TRL's loss was computed on: input_ids and completion_mask of each training batch
    compute_loss = DPOTrainer.compute_loss

    def recording(self, model, inputs, *args, **kwargs):
        batches.append({k: inputs[k].detach().clone() for k in ("input_ids", "completion_mask")})
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(DPOTrainer, "compute_loss", recording)
    scope: dict = {}
    exec(train, scope)  # noqa: S102 - the card's own snippet, trainer.train() included
    trainer = scope["trainer"]
    assert trainer.args.use_cpu and trainer.args.max_steps == 1
    assert trainer.state.global_step == 1 and np.isfinite(trainer.state.log_history[-1]["train_loss"])

    # One batch of both pairs (in the sampler's order: chosen sequences, then their rejected ones). Each sequence is
    # a prompt, then the completion TRL's loss covers (completion_mask 1), then padding.
    (batch,) = batches
    seqs = []
    for ids, mask in zip(batch["input_ids"].tolist(), batch["completion_mask"].tolist()):
        on = [i for i, m in enumerate(mask) if m]
        assert on == list(range(on[0], on[-1] + 1))
        seqs.append((ids[: on[0]], ids[on[0] : on[-1] + 1]))
    # The measured ids: a plain row's prompt is the whole context; a conversational row's prompt is the chat prompt,
    # and its completions start with the response so far.
    prompt_len, response = (
        (len(records[0].pivot_context_ids), [])
        if not chat
        else (records[0].prompt_length, records[0].pivot_context_ids[records[0].prompt_length :])
    )
    expected = {
        (
            tuple(rec.pivot_context_ids[:prompt_len]),
            tuple(response + [m["chosen_token_id"]]),
            tuple(response + [m["rejected_token_id"]]),
        )
        for rec, m in zip(records, (r["metadata"] for r in rows))
    }
    k = len(response) + 1
    got = {(tuple(seqs[j][0]), tuple(seqs[j][1][:k]), tuple(seqs[j + 2][1][:k])) for j in (0, 1)}
    assert seqs[0][0] == seqs[2][0] and seqs[1][0] == seqs[3][0] and got == expected
    if not chat:  # TokenIdsDPOTrainer: the loss covers exactly the measured single token, nothing appended
        assert type(trainer).__name__ == "TokenIdsDPOTrainer" and trainer.args.max_length is None
        assert [len(c) for _, c in seqs] == [1, 1, 1, 1]
    else:  # stock DPOTrainer: the card says each completion is closed with an end-of-turn token, trained too
        assert type(trainer) is DPOTrainer and all(r["metadata"]["trl_tokens_match"] for r in rows)
        assert all(len(c) > k and tok.eos_token_id in c[k:] for _, c in seqs)


def test_dpo_conversational_card(dpo_chat_file):
    card, _ = parse_card(build_card(dpo_chat_file, repo_id=REPO))
    assert "conversational" in card.text and "| `prompt` | list[object] | The messages" in card.text
    assert "| `chosen.content` | string |" in card.text


def test_steering_card(steering_file, tmp_path):
    card, meta = parse_card(build_card(steering_file, repo_id=REPO))
    assert {"pts", "pivotal-tokens", "steering-vectors", "optillm"} <= set(meta["tags"])
    assert "| Steering vectors | 4 |" in card.text and "| Positive / negative | 2 / 2 |" in card.text
    assert "| Vector size | 8 |" in card.text and "| Clusters | 2 |" in card.text
    assert "| Steering layer(s) | 20 |" in card.text
    optillm = next(b for b in code_blocks(card.text, "python") if "autothink_decode" in b)
    assert f'"steering_dataset": "{REPO}"' in optillm and '"target_layer": 20' in optillm
    compile(optillm, "optillm-snippet", "exec")
    for name in ("steering_vector", "cluster_vector", "reasoning_pattern", "steering_layer", "is_positive"):
        row = re.search(rf"^\| `{name}` \| [^|]+ \| (.+) \|$", card.text, re.MULTILINE)
        assert row and "Not described" not in row.group(1)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / steering_file.name).write_bytes(steering_file.read_bytes())
    (repo / "README.md").write_text(str(card))
    scope: dict = {}
    exec(code_blocks(card.text, "python")[0].replace(REPO, str(repo)), scope)  # noqa: S102
    ds = scope["dataset"]
    # The fields optillm's SteeringVectorManager requires of every row.
    assert ds.num_rows == 4 and {"pivot_context", "steering_vector", "reasoning_pattern"} <= set(ds.column_names)
    assert len(ds[0]["steering_vector"]) == 8


def test_steering_card_optillm_call_matches_optillm(steering_file):
    """The card's optillm snippet cannot run here (see consumers.optillm_autothink), so its call is checked against
    the source of the optillm the card names: autothink_decode(model, tokenizer, messages, request_config), and every
    key of the request config one AutoThink reads, with a value of its default's type."""
    card, _ = parse_card(build_card(steering_file, repo_id=REPO))
    optillm = next(b for b in code_blocks(card.text, "python") if "autothink_decode" in b)
    autothink = optillm_autothink()
    assert f"optillm ({autothink['version']})" in card.text and "autothink_decode" in autothink["exports"]
    assert "from optillm.autothink import autothink_decode" in optillm
    (call,) = [
        n
        for n in ast.walk(ast.parse(optillm))
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "autothink_decode"
    ]
    assert autothink["params"] == ["model", "tokenizer", "messages", "request_config"] and not call.keywords
    assert [getattr(a, "id", None) for a in call.args[:3]] == ["model", "tokenizer", "messages"]
    request = ast.literal_eval(call.args[3])
    assert request == {"steering_dataset": REPO, "target_layer": 20} and set(request) <= set(autothink["config"])
    assert all(type(value) is type(autothink["config"][key]) for key, value in request.items())


def _run_load_snippet(path: Path, tmp_path: Path) -> dict:
    """Run the card's load snippet (its first Python block) against a folder laid out as the Hub repo would be
    (the file and the card as README.md): the Hub repo id is the only thing replaced. Returns its variables."""
    card = build_card(path, repo_id=REPO)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / path.name).write_bytes(path.read_bytes())
    (repo / "README.md").write_text(str(card))
    load = code_blocks(card.text, "python")[0]
    assert load.count(f'"{REPO}"') == 1
    scope: dict = {}
    exec(load.replace(f'"{REPO}"', repr(str(repo))), scope)  # noqa: S102 - the card's own snippet
    return scope


@pytest.mark.parametrize("fixture, rows, positive", [("pivotal_file", 3, 2), ("original_file", 2, 1)])
def test_pivotal_load_snippet_runs(request, tmp_path, fixture, rows, positive):
    scope = _run_load_snippet(request.getfixturevalue(fixture), tmp_path)
    assert scope["dataset"].num_rows == rows and scope["positive"].num_rows == positive


def test_dpo_conversational_load_snippet_runs(dpo_chat_file, tmp_path, capsys):
    scope = _run_load_snippet(dpo_chat_file, tmp_path)
    assert scope["dataset"].num_rows == 2 and scope["row"]["prompt"] == [{"role": "user", "content": "What is 1 + 2?"}]
    assert "{'role': 'user', 'content': 'What is 1 + 2?'}" in capsys.readouterr().out


def test_critical_load_snippet_runs(critical_file, tmp_path):
    ds = _run_load_snippet(critical_file, tmp_path)["dataset"]
    assert ds.num_rows == 3 and ds[0]["critical_token"] == " 9" and ds[2]["critical_position"] is None


def test_critical_card(critical_file, tmp_path):
    card, meta = parse_card(build_card(critical_file, repo_id=REPO))
    assert "critical-tokens" in meta["tags"] and "| Incorrect trajectories | 3 |" in card.text
    assert "| Trajectories with a critical token | 2 of 3 |" in card.text
    assert "| pass@1 keeping / replacing the critical token (mean) | 0.000 (2) / 0.500 (2) |" in card.text
    assert "| Questions (tasks) | 3 |" in card.text
    assert re.search(r"^\| `critical_token` \| string \| .*cDPO", card.text, re.MULTILINE)
    # A field pts does not write is listed, and said to be undescribed rather than given a made-up meaning.
    rows = [{"query": "q", "critical_token": " 4", "critical_position": 3, "extra_field": 1.5}]
    card2, _ = parse_card(build_card(write_jsonl(tmp_path / "other.jsonl", rows), repo_id=REPO))
    assert "| `extra_field` | float | Not described by pts" in card2.text


def llama_cpp_control_vectors(argv: list[str]) -> list[tuple[str, float]]:
    """The (file, scale) pairs a llama.cpp command line adds, read as llama.cpp's common/arg.cpp reads them
    (the llama.cpp that llama-cpp-python 0.3.36 vendors): ``--control-vector FNAME[,FNAME...]`` at scale 1,
    ``--control-vector-scaled FNAME:SCALE[,...]`` as one argument. ValueError where llama.cpp refuses."""
    out = []
    for flag, value in zip(argv, argv[1:]):
        if flag == "--control-vector":
            out += [(name, 1.0) for name in value.split(",")]
        elif flag == "--control-vector-scaled":
            for item in value.split(","):
                parts = item.split(":")
                if len(parts) != 2:
                    raise ValueError("control-vector-scaled format: FNAME:SCALE")
                out.append((parts[0], float(parts[1])))
    return out


def test_control_vector_card(gguf_file):
    card, meta = parse_card(build_card(gguf_file, repo_id=REPO))
    assert {"control-vector", "gguf", "llama.cpp"} <= set(meta["tags"])
    assert meta["viewer"] is False and "configs" not in meta  # the viewer cannot read GGUF
    assert meta["size_categories"] == ["n<1K"]
    assert "| Layer directions | 2 |" in card.text and "| Layers | 10, 20 |" in card.text
    assert "| `direction.20` | float32[8] |" in card.text and "L2 norm 2.83" in card.text  # sqrt(8)
    assert "| Pivots behind it (positive / negative) | 5 / 3 |" in card.text
    assert meta["pretty_name"] == "Pivotal-token control vector (smollm2-135m-instruct-q4_1)"
    assert "| `pts.positive_pivots` | uint32 |" in card.text
    bash = "\n".join(code_blocks(card.text, "bash"))
    commands = [shlex.split(line, comments=True) for line in bash.splitlines() if line.startswith("llama-completion")]
    assert [llama_cpp_control_vectors(c) for c in commands] == [
        [("control_vector.gguf", 1.0)],
        [("control_vector.gguf", 16.0)],
    ]
    with pytest.raises(ValueError, match="FNAME:SCALE"):  # the form cards used to print
        llama_cpp_control_vectors(["llama-cli", "--control-vector-scaled", "control_vector.gguf", "0.5"])
    reader_snippet = next(b for b in code_blocks(card.text, "python") if "GGUFReader" in b)
    scope: dict = {}
    exec(reader_snippet.replace('"control_vector.gguf"', repr(str(gguf_file))), scope)  # noqa: S102
    assert sorted(scope["directions"]) == [10, 20]


def test_license_option_and_size_category_from_rows(tmp_path):
    rows = [pair_record(i % 7, 0.3) for i in range(1500)]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    _, meta = parse_card(build_card(path, license="mit", repo_id=REPO))
    assert meta["license"] == "mit" and meta["size_categories"] == ["1K<n<10K"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("\n\n", "has no records"),
        ('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a"\n', "line 2 is not valid JSON"),
        ('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n', "record 2 is not a dpo"),
        ('{"foo": 1}\n', "cannot tell what"),
        ("[1, 2]\n", "not a JSON object"),
    ],
)
def test_bad_input_files(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PTSError, match=message):
        inspect_file(path)


def test_bad_format_override(dpo_file, gguf_file):
    with pytest.raises(PTSError, match="is not a GGUF file"):
        inspect_file(dpo_file, "control-vector")
    with pytest.raises(PTSError, match="record 1 is not a steering record"):
        inspect_file(dpo_file, "steering")
    with pytest.raises(PTSError, match="unknown format"):
        inspect_file(dpo_file, "parquet")
    with pytest.raises(PTSError, match="not dpo records"):
        inspect_file(gguf_file, "dpo")


# --------------------------------------------------------------------------------------------------
# The cards' shell commands, run as printed against the fake Hub


def _usage_commands(card) -> list[list[str]]:
    """The command lines of the bash blocks in a card's Usage section, split as a shell splits them."""
    usage = card.text.split("## Usage")[1]
    return [
        shlex.split(line, comments=True)
        for block in code_blocks(usage, "bash")
        for line in block.splitlines()
        if line.strip()
    ]


def _run_card_command(argv: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run one of a card's commands as printed, its program this environment's: `hf` (huggingface_hub's CLI, the
    script installed beside this Python) or `pts` (``python -m pts``, this checkout)."""
    hf = Path(sys.executable).parent / "hf"
    program = {"hf": [str(hf) if hf.is_file() else "hf"], "pts": [sys.executable, "-m", "pts"]}[argv[0]]
    return subprocess.run(
        program + argv[1:], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_pivotal_card_commands_download_and_export(hub, online, tmp_path, embedded_loaded):
    """The pivotal card's bash block, run line by line as printed, in an empty folder, as a reader would: `hf
    download` fetches the pushed file from the (fake) Hub, then `pts export` turns it into DPO pairs. The records
    are in the embedded model's token ids, so the export pairs the measured tokens. (`embedded_loaded` leaves the
    dequantized model in the session's pts cache, where `pts export` finds the tokenizer fast.)"""
    from pts.store import read_jsonl

    tok = embedded_loaded.tokenizer
    records = [
        _embeddedpivot_record(tok, "What is 1 + 2?", "3", "9", positive=True),
        _embeddedpivot_record(tok, "What is 2 + 2?", "5", "4", positive=False),
    ]
    path = write_jsonl(tmp_path / "pivotal_tokens.jsonl", [r.to_dict() for r in records])
    push_dataset(path, REPO, token=TOKEN, endpoint=hub.url)
    card, _ = parse_card(hub.files[REPO]["README.md"].decode())
    commands = _usage_commands(card)
    assert [c[:2] for c in commands] == [["hf", "download"], ["pts", "export"]]
    reader = tmp_path / "reader"
    reader.mkdir()
    env = hub_env(tmp_path, HF_ENDPOINT=hub.url)  # no token: the repo is public
    before = len(hub.requests)
    for argv in commands:
        r = _run_card_command(argv, reader, env)
        assert r.returncode == 0, (argv, r.stdout, r.stderr)
    assert (reader / "pivotal_tokens.jsonl").read_bytes() == path.read_bytes()
    rows = read_jsonl(reader / "dpo_pairs.jsonl")
    assert [(r["chosen_ids"], r["rejected_ids"]) for r in rows] == [
        ([tok.convert_tokens_to_ids(a)], [tok.convert_tokens_to_ids(b)]) for a, b in (("3", "9"), ("4", "5"))
    ]
    assert [r["prompt_ids"] for r in rows] == [r.pivot_context_ids for r in records]
    # Only the download reached the Hub (besides huggingface_hub's own agent-registry request); pts export did not.
    ours = [(m, p) for m, p in hub.requests[before:] if p != "/api/agent-harnesses"]
    assert {p for _, p in ours} == {f"/datasets/{REPO}/resolve/main/pivotal_tokens.jsonl"}


@pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")  # huggingface_hub's LFS PUT, not ours
def test_control_vector_card_download_command(hub, online, tmp_path, gguf_file):
    """The control-vector card's `hf download`, run as printed, fetches the pushed GGUF; its llama.cpp commands need
    a llama.cpp build and a GGUF model, and are checked against llama.cpp's argument rules instead
    (test_control_vector_card)."""
    push_dataset(gguf_file, REPO, token=TOKEN, endpoint=hub.url)
    card, _ = parse_card(hub.files[REPO]["README.md"].decode())
    commands = _usage_commands(card)
    assert [c[0] for c in commands] == ["hf", "llama-completion", "llama-completion"]
    reader = tmp_path / "reader"
    reader.mkdir()
    r = _run_card_command(commands[0], reader, hub_env(tmp_path, HF_ENDPOINT=hub.url))
    assert r.returncode == 0, r.stderr
    assert (reader / "control_vector.gguf").read_bytes() == gguf_file.read_bytes()
    assert llama_cpp_control_vectors(commands[1]) == [("control_vector.gguf", 1.0)]
