"""What the `pts export` tests share (a pytest plugin, loaded by tests/conftest.py): one small real `pts run`, the
same pivots as the original tool writes them, and the residual stream read alone to check the exports against."""

import json

import pytest
import torch
from conftest import session_folder
from filelock import FileLock

from pts.jobs.run import RunConfig, run
from pts.records import ORIGINAL_FIELDS
from pts.steering.vectors import ControlVector
from pts.store import read_jsonl

DATASET = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=3"


def read_control_vector(path):
    """``(model_hint, {layer: direction})`` of a GGUF control vector, read by the class pts steer uses too."""
    vector = ControlVector.from_gguf(path)
    return vector.model_hint, vector.directions


def write_control_vector(path, directions, model_hint, extra=None):
    ControlVector(dict(directions), model_hint).to_gguf(path, extra)


OPTILLM_FIELDS = (
    "query",
    "pivot_context",
    "pivot_token",
    "pivot_token_id",
    "prob_before",
    "prob_after",
    "prob_delta",
    "is_positive",
    "model_id",
    "task_type",
    "steering_vector",
    "cluster_id",
    "reasoning_pattern",
    "cluster_vector",
    "steering_layer",
)


@pytest.fixture(scope="session")
def real(tmp_path_factory, embedded_engine):
    """One small `pts run` on the embedded model, shared by every export test and the browser's real-run test:
    (records path, records); its progress file is beside it.

    The run costs minutes, so pytest-xdist workers share one: the first worker to get here runs it into the
    session's common temporary folder, under a file lock, and the others read its file (a float32 run is the same
    in every worker, so which one ran it does not matter)."""
    shared = session_folder(tmp_path_factory)
    path = shared / "export-real" / "pivots.jsonl"
    done = path.with_name("done")  # a worker that dies mid-run leaves no folder that looks finished
    with FileLock(str(shared / "export-real.lock")):
        if not done.exists():
            path.parent.mkdir(exist_ok=True)
            run(
                RunConfig(
                    dataset=DATASET,
                    max_examples=2,
                    num_samples=4,
                    max_new_tokens=48,
                    output_path=str(path),
                    progress=False,
                    min_prob=0.0,
                    max_prob=1.0,
                ),
                engine=embedded_engine,
            )
            done.touch()
    records = read_jsonl(path)
    assert any(r["is_positive"] for r in records) and any(not r["is_positive"] for r in records), records
    return path, records


@pytest.fixture(scope="session")
def original(real, tmp_path_factory):
    """The same pivots as the original tool wrote them: its fields only, is_positive missing on every other line."""
    path = tmp_path_factory.mktemp("original") / "original.jsonl"
    rows = []
    for i, r in enumerate(real[1]):
        row = {k: r[k] for k in ORIGINAL_FIELDS}
        if i % 2:
            del row["is_positive"]
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


_STATES: dict = {}


@pytest.fixture(scope="module")
def forget_states():
    """Drop the memoized states when the module is done (use it with ``pytest.mark.usefixtures``)."""
    yield
    _STATES.clear()


def hidden_states(model, ids):
    """Every layer's residual stream of ``ids`` from an unpadded forward pass alone (memoized):
    ``hidden_states(...)[L + 1][t]`` is the output of decoder layer L at token t."""
    key = (id(model), tuple(ids))
    if key not in _STATES:
        with torch.inference_mode():
            out = model.model(input_ids=torch.tensor([list(ids)]), output_hidden_states=True)
        _STATES[key] = [h[0].float().numpy() for h in out.hidden_states]
    return _STATES[key]


def last_token_state(model, ids, layer):
    """Output of decoder layer ``layer`` at the last token of ``ids``, computed alone."""
    return hidden_states(model, ids)[layer + 1][-1]
