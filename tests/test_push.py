"""`pts push` and dataset cards: the whole upload path against a local fake of the Hub's API.

The fake speaks exactly the endpoints huggingface_hub 2.4 calls for
``create_repo`` + ``create_commit``: ``POST /api/repos/create``,
``GET /api/datasets/{repo}`` (repo_info), ``POST /api/validate-yaml`` (a
README.md in the commit), ``POST /api/datasets/{repo}/preupload/{rev}``,
``POST /api/datasets/{repo}/commit/{rev}`` (NDJSON: a header line, then one
line per file). Like the Hub, preupload answers "regular" for text files (their
content travels base64 in the commit) and "lfs" for binary ones (.gguf): those go
through the LFS batch API (``POST /datasets/{repo}.git/info/lfs/objects/batch``)
and a basic-transfer PUT before the commit names them by sha256. The real Hub
would take LFS files over Xet (hf_xet's own storage protocol, not faked here),
so the tests turn Xet off (``HF_HUB_DISABLE_XET``) and huggingface_hub falls back
to LFS. For the download commands cards print (``hf download``) it also serves
committed files: ``HEAD`` and ``GET /datasets/{repo}/resolve/{rev}/{path}``.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from consumers import optillm_autothink
from huggingface_hub import DatasetCard

from pts.errors import PTSError
from pts.formats.dpo import TRL_IDS_TRAINER
from pts.formats.pivotal import reconstructed_command
from pts.hub import build_card, inspect_file, push_dataset, size_category
from pts.records import ORIGINAL_FIELDS, FirstToken, PivotalToken

TOKEN = "hf_test_token_123"
REPO = "alice/pivotal-data"


# --------------------------------------------------------------------------------------------------
# A fake Hub


class FakeHub:
    """State of the fake Hub: repos, committed files, every request received, and failures to inject."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.repos: dict[str, dict] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.commits: list[dict] = []
        self.lfs: dict[str, bytes] = {}  # sha256 -> content uploaded through LFS
        self.fail: dict[str, tuple[int, str]] = {}  # path regex -> (status, error message)
        self.url = ""


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
            data = json.dumps(body or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while size := int(self.rfile.readline().strip().split(b";")[0], 16):
                    out += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return out
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _handle(self, method: str) -> None:
            body = self._body()
            path = self.path.split("?")[0]
            hub.requests.append((method, path))
            for pattern, (status, message) in hub.fail.items():
                if re.search(pattern, path):
                    return self._send(status, {"error": message}, {"X-Error-Message": message})
            m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if method in ("HEAD", "GET") and m:  # a file download (`hf download`, hf_hub_download)
                return self._resolve(method, m.group(1), m.group(3))
            if method == "PUT" and path.startswith("/lfs-upload/"):  # a presigned storage URL: no Hub token
                oid = path.rsplit("/", 1)[1]
                assert hashlib.sha256(body).hexdigest() == oid
                hub.lfs[oid] = body
                return self._send(200)
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._send(401, {"error": "Invalid credentials in Authorization header"})
            if method == "POST" and path == "/api/repos/create":
                req = json.loads(body)
                repo = f"{req['organization']}/{req['name']}" if req.get("organization") else f"alice/{req['name']}"
                url = f"{hub.url}/datasets/{repo}"
                if repo in hub.repos:
                    return self._send(409, {"error": "You already created this dataset repo", "url": url})
                hub.repos[repo] = {
                    "type": req.get("type"),
                    "visibility": req.get("visibility"),
                    "private": req.get("visibility") == "private",
                }
                hub.files[repo] = {}
                return self._send(200, {"url": url})
            if method == "POST" and path == "/api/validate-yaml":
                req = json.loads(body)
                meta = re.match(r"^---\n(.*?)\n---\n", req["content"], re.DOTALL)
                try:
                    assert meta and isinstance(yaml.safe_load(meta.group(1)), dict)
                except Exception:  # noqa: BLE001
                    return self._send(400, {"errors": [{"message": "bad YAML"}]})
                return self._send(200, {"errors": [], "warnings": []})
            m = re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
            if method == "POST" and m:
                req = json.loads(body)
                assert req["operation"] == "upload" and "basic" in req["transfers"]
                objects = [
                    {
                        "oid": o["oid"],
                        "size": o["size"],
                        "authenticated": True,
                        "actions": {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}", "header": {}}},
                    }
                    for o in req["objects"]
                ]
                return self._send(200, {"transfer": "basic", "objects": objects})
            m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(/.*)?", path)
            if not m or m.group(1) not in hub.repos:
                return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            repo, rest = m.group(1), m.group(2) or ""
            if method == "GET" and rest == "":
                return self._send(200, {"id": repo, "private": hub.repos[repo]["private"], "sha": "0" * 40})
            if method == "POST" and rest.startswith("/preupload/"):
                files = json.loads(body)["files"]
                mode = {True: "lfs", False: "regular"}
                return self._send(
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": mode[f["path"].endswith(".gguf")], "shouldIgnore": False}
                            for f in files
                        ]
                    },
                )
            if method == "POST" and rest.startswith("/commit/"):
                lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
                assert lines[0]["key"] == "header"
                commit = {"summary": lines[0]["value"]["summary"], "files": {}}
                for line in lines[1:]:
                    value = line["value"]
                    if line["key"] == "lfsFile":
                        assert value["algo"] == "sha256" and len(hub.lfs[value["oid"]]) == value["size"]
                        commit["files"][value["path"]] = hub.lfs[value["oid"]]
                    else:
                        assert line["key"] == "file" and value["encoding"] == "base64", line
                        commit["files"][value["path"]] = base64.b64decode(value["content"])
                hub.commits.append(commit)
                hub.files[repo].update(commit["files"])
                oid = f"{len(hub.commits):040x}"
                return self._send(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid})
            return self._send(404, {"error": f"no such endpoint {method} {path}"})

        def _resolve(self, method: str, repo: str, name: str) -> None:
            """A committed file as the Hub serves it: HEAD gives the commit, ETag and size; GET the bytes. A public
            repo needs no token; a private one answers 404 without it, as the Hub does."""
            if repo not in hub.repos or (
                hub.repos[repo]["private"] and self.headers.get("Authorization") != f"Bearer {TOKEN}"
            ):
                return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if name not in hub.files[repo]:
                return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            data = hub.files[repo][name]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", f"{len(hub.commits):040x}")
            self.end_headers()
            if method == "GET":
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler


@pytest.fixture
def hub():
    state = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def datasets_cache(monkeypatch, tmp_path):
    """A fresh `datasets` cache per test: it keys local data files by their mtime alone, so another test's
    cached copy could otherwise be returned."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


@pytest.fixture
def online(monkeypatch, tmp_path):
    """In-process pushes: offline mode off (conftest turns it on), no token unless a test sets one."""
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(c, "HF_HUB_DISABLE_XET", True)  # the fake speaks LFS, not Xet
    # huggingface_hub would fetch its agent registry from huggingface.co (not the fake) to build its user agent.
    import huggingface_hub.utils._detect_agent as detect

    monkeypatch.setattr(detect, "_registry", {"standardEnvVars": [], "harnesses": {}})
    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "no-cached-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


# --------------------------------------------------------------------------------------------------
# Hand-made files, one per format


def _pivot(i: int, delta: float, item: str) -> dict:
    before = 0.5
    return PivotalToken(
        model_id="smollm2-135m-instruct-q4_1",
        query=f"What is {i} + 2?",
        pivot_context=f"<|im_start|>user\nWhat is {i} + 2?<|im_end|>\n<|im_start|>assistant\nThe answer is",
        pivot_token=f" {i + 2}",
        pivot_token_id=100 + i,
        prob_before=before,
        prob_after=before + delta,
        prob_delta=delta,
        is_positive=delta > 0,
        task_type="chain_sum",
        dataset_id="rg:chain_sum?size=3",
        dataset_item_id=item,
        pivot_context_ids=[1, 2, 3, 4],
        prompt_length=3,
        samples_before=8,
        successes_before=4,
        samples_after=8,
        successes_after=int(8 * (before + delta)),
        first_tokens=[FirstToken(100 + i, f" {i + 2}", 5, 4), FirstToken(7, " 9", 3, 0)],
        ci_before=[0.2, 0.8],
        ci_after=[0.4, 0.95],
        answer=str(i + 2),
        position=3,
        search={
            "prob_threshold": 0.2,
            "num_samples": 8,
            "max_new_tokens": 64,
            "split_at": "logprob",
            "temperature": 0.6,
            "top_p": 0.95,
            "top_k": 0,
            "min_p": 0.0,
            "confidence": 0.9,
            "adaptive": False,
        },
    ).to_dict()


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def pivotal_file(tmp_path):
    rows = [_pivot(1, 0.375, "0"), _pivot(2, -0.5, "0"), _pivot(3, 0.25, "1")]
    return _write_jsonl(tmp_path / "pivotal_tokens.jsonl", rows)


@pytest.fixture
def original_file(tmp_path):
    rows = [{k: _pivot(i, d, str(i)).get(k) for k in ORIGINAL_FIELDS} for i, d in ((1, 0.3), (2, -0.4))]
    return _write_jsonl(tmp_path / "original.jsonl", rows)


def _pair(i: int, delta: float) -> dict:
    """A DPO row shaped like `pts export --format dpo` writes it."""
    return {
        "prompt": f"<|im_start|>user\nWhat is {i} + 2?<|im_end|>\n<|im_start|>assistant\nThe answer is",
        "chosen": f" {i + 2}",
        "rejected": " 9",
        "prompt_ids": [1, 2, 3],
        "chosen_ids": [100 + i],
        "rejected_ids": [7],
        "metadata": {
            "original_query": f"What is {i} + 2?",
            "prob_chosen": 0.875,
            "prob_rejected": 0.125,
            "prob_delta": delta,
            "prob_before": 0.5,
            "samples": {"chosen": 8, "rejected": 5},
            "is_positive": delta > 0,
            "task_type": "chain_sum",
            "model_id": "smollm2-135m-instruct-q4_1",
            "dataset_id": "rg:chain_sum",
            "dataset_item_id": str(i),
            "counterpart_verified": True,
            "counterpart_source": "first_tokens",
            "pivot_id": f"p{i}",
            "pivot_token_id": 100 + i,
            "chosen_token_id": 100 + i,
            "rejected_token_id": 7,
            "prompt_token_ids": [1, 2, 3],
            "retokenized": False,
            "trl_tokens_match": i % 2 == 1,
        },
    }


@pytest.fixture
def dpo_file(tmp_path):
    return _write_jsonl(tmp_path / "dpo_pairs.jsonl", [_pair(1, 0.4), _pair(2, -0.3), _pair(3, 0.5)])


@pytest.fixture
def steering_file(tmp_path):
    """Steering rows shaped like `pts export --format steering` writes them."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        vec = rng.normal(size=8).round(4).tolist()
        rows.append(
            {
                "query": f"q{i % 2}",
                "pivot_context": f"context {i}",
                "pivot_token": " so",
                "pivot_token_id": 42,
                "prob_before": 0.5,
                "prob_after": 0.5 + (0.3 if i % 2 else -0.3),
                "prob_delta": 0.3 if i % 2 else -0.3,
                "is_positive": bool(i % 2),
                "model_id": "smollm2-135m-instruct-q4_1",
                "task_type": "chain_sum",
                "steering_vector": vec,
                "cluster_id": i % 2,
                "reasoning_pattern": ["numerical_accuracy", "organization"][i % 2],
                "cluster_vector": vec,
                "steering_layer": 20,
                "activation": vec,
                "contrastive_vector": None if i == 0 else vec,
                "contrastive_scope": "overall",
                "layer_activations": {"18": vec, "20": vec},
                "activation_position": 11,
                "retokenized": False,
                "pivot_id": f"p{i}",
                "dataset_id": "rg:chain_sum",
                "dataset_item_id": str(i % 2),
            }
        )
    return _write_jsonl(tmp_path / "steering_vectors.jsonl", rows)


def _critical(i: int, found: bool) -> dict:
    """A critical-token record shaped like `pts critical` writes it (the cDPO search)."""
    return {
        "model_id": "smollm2-135m-instruct-q4_1",
        "query": f"What is {i} + 2?",
        "answer": str(i + 2),
        "response": "The answer is 9",
        "response_ids": [10, 11, 12, 13],
        "prompt_ids": [1, 2, 3],
        "prompt_length": 3,
        "critical_position": 3 if found else None,
        "critical_token": " 9" if found else None,
        "critical_token_id": 13 if found else None,
        "critical_context": "...The answer is",
        "rule": "first_zero_then_low" if found else "none",
        "score": 0.0 if found else None,
        "scores": [0.5, 0.25, None, 0.0],
        "score_samples": [8, 8, 0, 8],
        "score_successes": [4, 2, 0, 0],
        "low_threshold": 0.2,
        "mode": "all",
        "rollouts": 24,
        "task_type": "chain_sum",
        "dataset_id": "rg:chain_sum",
        "dataset_item_id": str(i),
        "trajectory_index": 0,
        "p_initial": 0.4,
        "pass_at_k_with": [0.0, 0.0] if found else [],
        "pass_at_k_without": [0.5, 0.75] if found else [],
        "samples_with": 4,
        "successes_with": 0,
        "samples_without": 4,
        "successes_without": 2,
        "alternatives": [{"token_id": 14, "token": f" {i + 2}", "count": 4, "successes": 2}],
        "pass_at_k_rollouts": 8,
        "search": {"num_samples": 8},
        "timestamp": "2025-01-01T00:00:00",
        "id": f"c{i}",
        "kind": "critical_token",
        "schema_version": 1,
    }


@pytest.fixture
def critical_file(tmp_path):
    rows = [_critical(1, True), _critical(2, True), _critical(3, False)]
    return _write_jsonl(tmp_path / "critical_tokens.jsonl", rows)


@pytest.fixture
def gguf_file(tmp_path):
    import gguf

    path = tmp_path / "control_vector.gguf"
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_uint32("controlvector.layer_count", 2)
    writer.add_string("pts.model_id", "smollm2-135m-instruct-q4_1")  # what pts export adds
    writer.add_string("pts.method", "mean_difference")
    writer.add_uint32("pts.positive_pivots", 5)
    writer.add_uint32("pts.negative_pivots", 3)
    for layer in (10, 20):
        writer.add_tensor(f"direction.{layer}", np.full(8, 0.5 if layer == 10 else 1.0, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --------------------------------------------------------------------------------------------------
# Cards


def _parse(card) -> tuple[DatasetCard, dict]:
    """Round-trip the card's text through DatasetCard, as the Hub and `DatasetCard.load` would read it."""
    parsed = DatasetCard(str(card))
    return parsed, parsed.data.to_dict()


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.DOTALL)


@pytest.mark.parametrize(
    "fixture",
    ["pivotal_file", "original_file", "dpo_file", "dpo_chat_file", "steering_file", "critical_file", "gguf_file"],
)
def test_glossary_describes_every_field(request, fixture):
    path = request.getfixturevalue(fixture)
    card, _ = _parse(build_card(path, repo_id=REPO))
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
                if isinstance(value, dict) and key != "layer_activations":
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
    card, meta = _parse(build_card(pivotal_file, repo_id=REPO))
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
    card2, _ = _parse(build_card(pivotal_file, command="pts run --dataset gsm8k --num-samples 32", repo_id=REPO))
    assert "pts run --dataset gsm8k --num-samples 32" in card2.text


def test_original_tool_file_card(original_file):
    card, meta = _parse(build_card(original_file, model="Qwen/Qwen3-0.6B", repo_id=REPO))
    assert "original PTS tool" in card.text
    assert "`Qwen/Qwen3-0.6B`" in card.text and meta["pretty_name"] == "Pivotal tokens (Qwen/Qwen3-0.6B)"
    assert "| Positive / negative | 1 / 1 |" in card.text
    for name in ORIGINAL_FIELDS:
        assert f"| `{name}` |" in card.text


def test_dpo_card_and_its_load_snippet_runs(dpo_file, tmp_path):
    card, meta = _parse(build_card(dpo_file, repo_id=REPO))
    assert {"pts", "pivotal-tokens", "dpo"} <= set(meta["tags"])
    assert "| Preference pairs | 3 |" in card.text
    assert "| Pairs from positive / negative pivots | 2 / 1 |" in card.text
    assert "| Counterparts verified with the oracle | 3 of 3 |" in card.text
    assert "| Pairs TRL tokenizes exactly as measured | 2 of 3 |" in card.text
    assert "| Questions (tasks) | 3 |" in card.text
    for name in ("prompt", "chosen", "rejected", "metadata.prob_chosen", "metadata.counterpart_verified"):
        assert f"| `{name}` |" in card.text
    blocks = _code_blocks(card.text, "python")
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


def _embedded_pivot(tok, question: str, pivot: str, counterpart: str, positive: bool) -> PivotalToken:
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
        _embedded_pivot(tok, "What is 1 + 2?", "3", "9", positive=True),
        _embedded_pivot(tok, "What is 2 + 2?", "5", "4", positive=False),
    ]
    pivots = _write_jsonl(tmp_path / "pivotal_tokens.jsonl", [r.to_dict() for r in records])
    data = tmp_path / "dpo_pairs.jsonl"
    export(ExportConfig(input_path=str(pivots), format="dpo", output_path=str(data), chat=chat), loaded=embedded_loaded)
    rows = read_jsonl(data)
    assert [(m["chosen_token_id"], m["rejected_token_id"]) for m in (r["metadata"] for r in rows)] == [
        tuple(tok.convert_tokens_to_ids(t) for t in pair) for pair in (("3", "9"), ("4", "5"))
    ]

    card, _ = _parse(build_card(data, repo_id=REPO))
    train = next(b for b in _code_blocks(card.text, "python") if "DPOTrainer" in b)
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


@pytest.fixture
def dpo_chat_file(tmp_path):
    """The conversational form `pts export --format dpo --chat` writes."""
    rows = []
    for i, delta in ((1, 0.5), (2, -0.4)):
        meta = _pair(i, delta)["metadata"]
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"What is {i} + 2?"}],
                "chosen": [{"role": "assistant", "content": f"The answer is {i + 2}"}],
                "rejected": [{"role": "assistant", "content": "The answer is 9"}],
                "metadata": meta,
            }
        )
    return _write_jsonl(tmp_path / "dpo_chat.jsonl", rows)


def test_dpo_conversational_card(dpo_chat_file):
    card, _ = _parse(build_card(dpo_chat_file, repo_id=REPO))
    assert "conversational" in card.text and "| `prompt` | list[object] | The messages" in card.text
    assert "| `chosen.content` | string |" in card.text


def test_steering_card(steering_file, tmp_path):
    card, meta = _parse(build_card(steering_file, repo_id=REPO))
    assert {"pts", "pivotal-tokens", "steering-vectors", "optillm"} <= set(meta["tags"])
    assert "| Steering vectors | 4 |" in card.text and "| Positive / negative | 2 / 2 |" in card.text
    assert "| Vector size | 8 |" in card.text and "| Clusters | 2 |" in card.text
    assert "| Steering layer(s) | 20 |" in card.text
    optillm = next(b for b in _code_blocks(card.text, "python") if "autothink_decode" in b)
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
    exec(_code_blocks(card.text, "python")[0].replace(REPO, str(repo)), scope)  # noqa: S102
    ds = scope["dataset"]
    # The fields optillm's SteeringVectorManager requires of every row.
    assert ds.num_rows == 4 and {"pivot_context", "steering_vector", "reasoning_pattern"} <= set(ds.column_names)
    assert len(ds[0]["steering_vector"]) == 8


def test_steering_card_optillm_call_matches_optillm(steering_file):
    """The card's optillm snippet cannot run here (see consumers.optillm_autothink), so its call is checked against
    the source of the optillm the card names: autothink_decode(model, tokenizer, messages, request_config), and every
    key of the request config one AutoThink reads, with a value of its default's type."""
    card, _ = _parse(build_card(steering_file, repo_id=REPO))
    optillm = next(b for b in _code_blocks(card.text, "python") if "autothink_decode" in b)
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
    load = _code_blocks(card.text, "python")[0]
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
    card, meta = _parse(build_card(critical_file, repo_id=REPO))
    assert "critical-tokens" in meta["tags"] and "| Incorrect trajectories | 3 |" in card.text
    assert "| Trajectories with a critical token | 2 of 3 |" in card.text
    assert "| pass@1 keeping / replacing the critical token (mean) | 0.000 (2) / 0.500 (2) |" in card.text
    assert "| Questions (tasks) | 3 |" in card.text
    assert re.search(r"^\| `critical_token` \| string \| .*cDPO", card.text, re.MULTILINE)
    # A field pts does not write is listed, and said to be undescribed rather than given a made-up meaning.
    rows = [{"query": "q", "critical_token": " 4", "critical_position": 3, "extra_field": 1.5}]
    card2, _ = _parse(build_card(_write_jsonl(tmp_path / "other.jsonl", rows), repo_id=REPO))
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
    card, meta = _parse(build_card(gguf_file, repo_id=REPO))
    assert {"control-vector", "gguf", "llama.cpp"} <= set(meta["tags"])
    assert meta["viewer"] is False and "configs" not in meta  # the viewer cannot read GGUF
    assert meta["size_categories"] == ["n<1K"]
    assert "| Layer directions | 2 |" in card.text and "| Layers | 10, 20 |" in card.text
    assert "| `direction.20` | float32[8] |" in card.text and "L2 norm 2.83" in card.text  # sqrt(8)
    assert "| Pivots behind it (positive / negative) | 5 / 3 |" in card.text
    assert meta["pretty_name"] == "Pivotal-token control vector (smollm2-135m-instruct-q4_1)"
    assert "| `pts.positive_pivots` | uint32 |" in card.text
    bash = "\n".join(_code_blocks(card.text, "bash"))
    commands = [shlex.split(line, comments=True) for line in bash.splitlines() if line.startswith("llama-completion")]
    assert [llama_cpp_control_vectors(c) for c in commands] == [
        [("control_vector.gguf", 1.0)],
        [("control_vector.gguf", 16.0)],
    ]
    with pytest.raises(ValueError, match="FNAME:SCALE"):  # the form cards used to print
        llama_cpp_control_vectors(["llama-cli", "--control-vector-scaled", "control_vector.gguf", "0.5"])
    reader_snippet = next(b for b in _code_blocks(card.text, "python") if "GGUFReader" in b)
    scope: dict = {}
    exec(reader_snippet.replace('"control_vector.gguf"', repr(str(gguf_file))), scope)  # noqa: S102
    assert sorted(scope["directions"]) == [10, 20]


def test_license_option_and_size_category_from_rows(tmp_path):
    rows = [_pair(i % 7, 0.3) for i in range(1500)]
    path = _write_jsonl(tmp_path / "big.jsonl", rows)
    _, meta = _parse(build_card(path, license="mit", repo_id=REPO))
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
# Pushing


def test_push_creates_repo_and_commits_file_and_card(hub, online, dpo_file):
    url = push_dataset(dpo_file, REPO, token=TOKEN, endpoint=hub.url, command="pts export --format dpo")
    assert url == f"{hub.url}/datasets/{REPO}"
    assert hub.repos[REPO] == {"type": "dataset", "visibility": None, "private": False}
    assert [p for m, p in hub.requests] == [
        "/api/repos/create",
        "/api/validate-yaml",
        f"/api/datasets/{REPO}/preupload/main",
        f"/api/datasets/{REPO}/commit/main",
    ]
    assert len(hub.commits) == 1 and set(hub.commits[0]["files"]) == {"dpo_pairs.jsonl", "README.md"}
    assert "3 rows" in hub.commits[0]["summary"]
    assert hub.files[REPO]["dpo_pairs.jsonl"] == dpo_file.read_bytes()
    card, meta = _parse(hub.files[REPO]["README.md"].decode())
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "dpo_pairs.jsonl"}]
    assert meta["size_categories"] == ["n<1K"] and "dpo" in meta["tags"]
    assert "pts export --format dpo" in card.text and f'load_dataset("{REPO}", split="train")' in card.text


@pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")  # huggingface_hub's LFS PUT, not ours
def test_push_private_and_existing_repo(hub, online, pivotal_file, gguf_file):
    push_dataset(pivotal_file, REPO, private=True, token=TOKEN, endpoint=hub.url)
    assert hub.repos[REPO]["visibility"] == "private"
    # Again into the same (private) repo: a second commit, the file replaced.
    push_dataset(gguf_file, REPO, private=True, token=TOKEN, endpoint=hub.url)
    assert len(hub.commits) == 2 and set(hub.files[REPO]) == {
        "pivotal_tokens.jsonl",
        "control_vector.gguf",
        "README.md",
    }
    assert hub.files[REPO]["control_vector.gguf"] == gguf_file.read_bytes()
    assert hub.lfs == {hashlib.sha256(gguf_file.read_bytes()).hexdigest(): gguf_file.read_bytes()}  # went by LFS
    assert f"/datasets/{REPO}.git/info/lfs/objects/batch" in [p for _, p in hub.requests]
    _, meta = _parse(hub.files[REPO]["README.md"].decode())
    assert "control-vector" in meta["tags"]


def test_push_private_refuses_existing_public_repo(hub, online, dpo_file):
    push_dataset(dpo_file, REPO, token=TOKEN, endpoint=hub.url)
    with pytest.raises(PTSError, match="already exists and is public"):
        push_dataset(dpo_file, REPO, private=True, token=TOKEN, endpoint=hub.url)
    assert len(hub.commits) == 1


def test_push_without_readme(hub, online, steering_file):
    push_dataset(steering_file, REPO, readme=False, token=TOKEN, endpoint=hub.url)
    assert set(hub.commits[0]["files"]) == {"steering_vectors.jsonl"}
    assert ("POST", "/api/validate-yaml") not in hub.requests


def test_push_bare_name_lands_in_token_namespace(hub, online, dpo_file):
    url = push_dataset(dpo_file, "just-a-name", token=TOKEN, endpoint=hub.url)
    assert url.endswith("/datasets/alice/just-a-name")
    card, _ = _parse(hub.files["alice/just-a-name"]["README.md"].decode())
    assert 'load_dataset("alice/just-a-name", split="train")' in card.text


def test_push_token_from_env(hub, online, monkeypatch, dpo_file):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    push_dataset(dpo_file, REPO, endpoint=hub.url)
    assert REPO in hub.repos


def test_push_without_token(hub, online, dpo_file):
    with pytest.raises(PTSError, match=re.escape("no Hugging Face token: set HF_TOKEN or run `hf auth login`")):
        push_dataset(dpo_file, REPO, endpoint=hub.url)
    assert hub.requests == []


@pytest.mark.parametrize(
    "token, fail, message",
    [
        ("hf_wrong", {}, r"rejected the token \(401 Unauthorized\).*hf auth login"),
        (
            TOKEN,
            {"/api/repos/create": (403, "You don't have the rights to create a dataset under the namespace")},
            r"no permission to create dataset repo alice/pivotal-data \(403 Forbidden\).*write access to alice",
        ),
        (TOKEN, {"/commit/": (500, "Internal Error")}, r"cannot upload dpo_pairs.jsonl .*HTTP 500 \(Internal Error\)"),
        (TOKEN, {"/api/repos/create": (404, "Not Found")}, r"not found \(404\)"),
    ],
)
def test_push_http_errors_are_one_line(hub, online, dpo_file, token, fail, message):
    hub.fail = fail
    with pytest.raises(PTSError, match=message) as e:
        push_dataset(dpo_file, REPO, token=token, endpoint=hub.url)
    assert "\n" not in str(e.value)


def test_push_unreachable_hub(online, dpo_file):
    with pytest.raises(PTSError, match=r"cannot reach the Hub at http://127.0.0.1:9 ") as e:
        push_dataset(dpo_file, REPO, token=TOKEN, endpoint="http://127.0.0.1:9")
    assert "\n" not in str(e.value)


def test_push_offline_mode(hub, dpo_file):
    # conftest sets HF_HUB_OFFLINE=1: refused before any request.
    with pytest.raises(PTSError, match=r"offline mode is on \(HF_HUB_OFFLINE=1\)"):
        push_dataset(dpo_file, REPO, token=TOKEN, endpoint=hub.url)
    assert hub.requests == []


@pytest.mark.parametrize("repo_id", ["", "a/b/c", "alice/", "/name", "alice/bad name", "alice/x--y", "alice/-x"])
def test_bad_repo_id(hub, online, dpo_file, repo_id):
    with pytest.raises(PTSError, match="bad repo id"):
        push_dataset(dpo_file, repo_id, token=TOKEN, endpoint=hub.url)
    assert hub.requests == []


@pytest.mark.parametrize(
    "path_in_repo, message",
    [
        ("../x.jsonl", "bad --path-in-repo"),
        ("/abs.jsonl", "bad --path-in-repo"),
        ("README.md", "overwritten by the dataset card"),
    ],
)
def test_bad_path_in_repo(hub, online, dpo_file, path_in_repo, message):
    with pytest.raises(PTSError, match=message):
        push_dataset(dpo_file, REPO, token=TOKEN, endpoint=hub.url, path_in_repo=path_in_repo)
    assert hub.requests == []


def test_push_path_in_repo(hub, online, dpo_file):
    push_dataset(dpo_file, REPO, token=TOKEN, endpoint=hub.url, path_in_repo="data/train.jsonl")
    assert set(hub.files[REPO]) == {"data/train.jsonl", "README.md"}
    _, meta = _parse(hub.files[REPO]["README.md"].decode())
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train.jsonl"}]


# --------------------------------------------------------------------------------------------------
# The cards' shell commands, run as printed against the fake Hub


def _usage_commands(card) -> list[list[str]]:
    """The command lines of the bash blocks in a card's Usage section, split as a shell splits them."""
    usage = card.text.split("## Usage")[1]
    return [
        shlex.split(line, comments=True)
        for block in _code_blocks(usage, "bash")
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
        _embedded_pivot(tok, "What is 1 + 2?", "3", "9", positive=True),
        _embedded_pivot(tok, "What is 2 + 2?", "5", "4", positive=False),
    ]
    path = _write_jsonl(tmp_path / "pivotal_tokens.jsonl", [r.to_dict() for r in records])
    push_dataset(path, REPO, token=TOKEN, endpoint=hub.url)
    card, _ = _parse(hub.files[REPO]["README.md"].decode())
    commands = _usage_commands(card)
    assert [c[:2] for c in commands] == [["hf", "download"], ["pts", "export"]]
    reader = tmp_path / "reader"
    reader.mkdir()
    env = _env(tmp_path, HF_ENDPOINT=hub.url)  # no token: the repo is public
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
    card, _ = _parse(hub.files[REPO]["README.md"].decode())
    commands = _usage_commands(card)
    assert [c[0] for c in commands] == ["hf", "llama-completion", "llama-completion"]
    reader = tmp_path / "reader"
    reader.mkdir()
    r = _run_card_command(commands[0], reader, _env(tmp_path, HF_ENDPOINT=hub.url))
    assert r.returncode == 0, r.stderr
    assert (reader / "control_vector.gguf").read_bytes() == gguf_file.read_bytes()
    assert llama_cpp_control_vectors(commands[1]) == [("control_vector.gguf", 1.0)]


# --------------------------------------------------------------------------------------------------
# The command


def _pts(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pts", "push", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_XET="1", **extra)  # no cached login
    return env


def test_cli_push(hub, tmp_path, steering_file):
    env = _env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN)
    r = _pts(
        [
            "--input-path",
            str(steering_file),
            "--hf-repo-id",
            REPO,
            "--private",
            "--model",
            "Qwen/Qwen3-0.6B",
            "--license",
            "mit",
        ],
        env,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        f"pushed {steering_file} (4 rows, steering) and a dataset card to {hub.url}/datasets/{REPO}"
    )
    assert hub.repos[REPO]["private"]
    card, meta = _parse(hub.files[REPO]["README.md"].decode())
    assert meta["license"] == "mit" and "Qwen/Qwen3-0.6B" in meta["pretty_name"]
    assert 'model_id = "Qwen/Qwen3-0.6B"' in card.text


def test_cli_errors_exit_2(hub, tmp_path, dpo_file):
    """Through a real process: the environment decides (HF_TOKEN, HF_HUB_OFFLINE, HF_ENDPOINT)."""
    base = ["--input-path", str(dpo_file), "--hf-repo", REPO]
    cases = [
        (_env(tmp_path, HF_ENDPOINT=hub.url), "no Hugging Face token: set HF_TOKEN or run `hf auth login`"),
        (_env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN=TOKEN, HF_HUB_OFFLINE="1"), "offline mode is on"),
        (_env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN="hf_wrong"), "rejected the token (401 Unauthorized)"),
    ]
    for env, message in cases:
        r = _pts(base, env, tmp_path)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert r.stderr.startswith("pts push: error: ") and message in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    # huggingface_hub fetches its agent registry (`/api/agent-harnesses`, telemetry for its user agent) once a day
    # per HF_HOME; that request is not pts's. Otherwise only the 401 case reached the server.
    ours = [p for _, p in hub.requests if p != "/api/agent-harnesses"]
    assert ours == ["/api/repos/create", f"/api/datasets/{REPO}"]
    assert not hub.repos and not hub.commits


@pytest.mark.parametrize("case", ["missing", "empty", "invalid-json", "bad-repo", "wrong-format", "unreachable"])
def test_cli_bad_input_exit_2(hub, online, monkeypatch, capsys, tmp_path, dpo_file, case):
    """Through `pts.cli.main`: one line on stderr, exit 2, and no request before the input is known to be good."""
    from pts.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    path, repo, extra = str(dpo_file), REPO, []
    if case == "missing":
        path = str(tmp_path / "missing.jsonl")
    elif case == "empty":
        (tmp_path / "empty.jsonl").write_text("")
        path = str(tmp_path / "empty.jsonl")
    elif case == "invalid-json":
        (tmp_path / "bad.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\nnot json\n')
        path = str(tmp_path / "bad.jsonl")
    elif case == "bad-repo":
        repo = "alice/bad name"
    elif case == "wrong-format":
        extra = ["--format", "steering"]
    import huggingface_hub.constants as c

    # The CLI talks to HF_ENDPOINT, read when huggingface_hub is imported: point it at the fake (or at nothing).
    monkeypatch.setattr(c, "ENDPOINT", "http://127.0.0.1:9" if case == "unreachable" else hub.url)
    rc = main(["push", "--input-path", path, "--hf-repo", repo, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("pts push: error: ") and err.count("\n") == 1, err
    expected = {
        "missing": "does not exist",
        "empty": "is empty",
        "invalid-json": "line 2 is not valid JSON",
        "bad-repo": "bad repo id",
        "wrong-format": "is not a steering record",
        "unreachable": "cannot reach the Hub at http://127.0.0.1:9",
    }[case]
    assert expected in err
    assert hub.requests == []
