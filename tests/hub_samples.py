"""The fake Hub and the hand-made files of every format that the card and push tests share (a pytest plugin:
tests/conftest.py loads it, so its fixtures are there for every test module).

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

import base64
import hashlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_jsonl
from huggingface_hub import DatasetCard

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


@pytest.fixture
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


def pivot_record(i: int, delta: float, item: str) -> dict:
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


@pytest.fixture
def pivotal_file(tmp_path):
    rows = [pivot_record(1, 0.375, "0"), pivot_record(2, -0.5, "0"), pivot_record(3, 0.25, "1")]
    return write_jsonl(tmp_path / "pivotal_tokens.jsonl", rows)


@pytest.fixture
def original_file(tmp_path):
    rows = [{k: pivot_record(i, d, str(i)).get(k) for k in ORIGINAL_FIELDS} for i, d in ((1, 0.3), (2, -0.4))]
    return write_jsonl(tmp_path / "original.jsonl", rows)


def pair_record(i: int, delta: float) -> dict:
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
    return write_jsonl(tmp_path / "dpo_pairs.jsonl", [pair_record(1, 0.4), pair_record(2, -0.3), pair_record(3, 0.5)])


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
                "activation_position": 11,
                "activation_dtype": "float32",
                "direction_method": "decision_gradient",
                "objective": "logit_difference" if i else "success_logprob",
                "success_token": " so",
                "success_token_id": 42,
                "failure_token": " but" if i else None,
                "failure_token_id": 43 if i else None,
                "gain_per_unit_norm": 0.4,
                "residual_norm": 12.5,
                "layer_gains": {"18": 0.3, "20": 0.4},
                "adds_toward_success": True,
                "retokenized": False,
                "pivot_id": f"p{i}",
                "dataset_id": "rg:chain_sum",
                "dataset_item_id": str(i % 2),
            }
        )
    return write_jsonl(tmp_path / "steering_vectors.jsonl", rows)


def critical_record(i: int, found: bool) -> dict:
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
    rows = [critical_record(1, True), critical_record(2, True), critical_record(3, False)]
    return write_jsonl(tmp_path / "critical_tokens.jsonl", rows)


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


def parse_card(card) -> tuple[DatasetCard, dict]:
    """Round-trip the card's text through DatasetCard, as the Hub and `DatasetCard.load` would read it."""
    parsed = DatasetCard(str(card))
    return parsed, parsed.data.to_dict()


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.DOTALL)


@pytest.fixture
def dpo_chat_file(tmp_path):
    """The conversational form `pts export --format dpo --chat` writes."""
    rows = []
    for i, delta in ((1, 0.5), (2, -0.4)):
        meta = pair_record(i, delta)["metadata"]
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"What is {i} + 2?"}],
                "chosen": [{"role": "assistant", "content": f"The answer is {i + 2}"}],
                "rejected": [{"role": "assistant", "content": "The answer is 9"}],
                "metadata": meta,
            }
        )
    return write_jsonl(tmp_path / "dpo_chat.jsonl", rows)


def hub_env(tmp_path: Path, **extra: str) -> dict:
    """The environment of a `pts`/`hf` process that talks to the fake Hub: no token, no cached login."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_XET="1", **extra)  # no cached login
    return env
