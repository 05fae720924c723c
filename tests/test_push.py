"""`pts push`: the upload path against a local fake of the Hub's API (tests/hub_samples.py), and the command."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from conftest import run_pts
from hub_samples import REPO, TOKEN, hub_env, parse_card

from pts.errors import PTSError
from pts.hub import push_dataset

# A fresh `datasets` cache per test (see hub_samples.datasets_cache).
pytestmark = pytest.mark.usefixtures("datasets_cache")

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
    card, meta = parse_card(hub.files[REPO]["README.md"].decode())
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
    _, meta = parse_card(hub.files[REPO]["README.md"].decode())
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
    card, _ = parse_card(hub.files["alice/just-a-name"]["README.md"].decode())
    assert 'load_dataset("alice/just-a-name", split="train")' in card.text


def test_push_token_fromhub_env(hub, online, monkeypatch, dpo_file):
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
    _, meta = parse_card(hub.files[REPO]["README.md"].decode())
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train.jsonl"}]


# --------------------------------------------------------------------------------------------------
# The command


def _pts(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return run_pts("push", *args, cwd=cwd, env=env, inherit_env=False, timeout=120)


def test_cli_push(hub, tmp_path, steering_file):
    env = hub_env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN)
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
    card, meta = parse_card(hub.files[REPO]["README.md"].decode())
    assert meta["license"] == "mit" and "Qwen/Qwen3-0.6B" in meta["pretty_name"]
    assert 'model_id = "Qwen/Qwen3-0.6B"' in card.text


def test_cli_errors_exit_2(hub, tmp_path, dpo_file):
    """Through a real process: the environment decides (HF_TOKEN, HF_HUB_OFFLINE, HF_ENDPOINT)."""
    base = ["--input-path", str(dpo_file), "--hf-repo", REPO]
    cases = [
        (hub_env(tmp_path, HF_ENDPOINT=hub.url), "no Hugging Face token: set HF_TOKEN or run `hf auth login`"),
        (hub_env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN=TOKEN, HF_HUB_OFFLINE="1"), "offline mode is on"),
        (hub_env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN="hf_wrong"), "rejected the token (401 Unauthorized)"),
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
