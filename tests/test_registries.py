"""The extension points of docs/architecture.md: engines, oracles and dataset sources registered by name."""

from __future__ import annotations

import json
import sys
import types

import pytest

from pts import engines
from pts.engines.fake import FakeEngine, PassFailOracle
from pts.errors import PTSError
from pts.jobs.run import RunConfig, run
from pts.store import read_jsonl
from pts.tasks import oracles, sources
from pts.tasks.task import Task


@pytest.fixture
def registered(monkeypatch):
    """Registries restored after the test."""
    monkeypatch.setattr(engines, "ENGINES", dict(engines.ENGINES))
    monkeypatch.setattr(oracles, "ORACLES", dict(oracles.ORACLES))
    monkeypatch.setattr(sources, "SOURCE_KINDS", list(sources.SOURCE_KINDS))


def test_an_engine_registered_by_name_is_what_pts_run_samples_with(registered, tmp_path, monkeypatch):
    made = []

    def create(model, *, device, dtype, batch_size):
        made.append((model, device, dtype, batch_size))
        # p(success) 0.5 at the start, 1 after token 1, 0 after token 2: a planted pivot at position 0.
        engine = FakeEngine(
            lambda prefix: 0.5 if not prefix else (1.0 if prefix[0] == 1 else 0.0), script=[1, 3, 3], prompt_length=3
        )
        return engine

    module = types.ModuleType("my_engines")
    module.create = create
    monkeypatch.setitem(sys.modules, "my_engines", module)
    engines.register_engine("mine", "my_engines:create")
    tasks = [Task(query="query", answer="PASS", item_id="q0", dataset_id="d", task_type="t", oracle=PassFailOracle())]
    config = RunConfig(
        engine="mine",
        model="m",
        batch_size=7,
        output_path=str(tmp_path / "out.jsonl"),
        num_samples=8,
        max_new_tokens=3,
        min_prob=0.0,
        max_prob=1.0,
        progress=False,
    )
    with pytest.raises(PTSError, match="unknown --engine 'nowhere'; available: hf, vllm, mine"):
        RunConfig(engine="nowhere").validate()
    summary = run(config, tasks=tasks)
    assert made == [("m", "auto", "auto", 7)] and summary.searched == 1
    assert all(r["model_id"] == "fake" for r in read_jsonl(config.output_path))


def test_create_engine_names_the_registered_engines_for_an_unknown_one():
    with pytest.raises(PTSError, match="unknown --engine 'nope'; available: hf, vllm"):
        engines.create_engine("nope", "m")


def test_an_oracle_registered_by_name_judges_rows(registered, tmp_path):
    oracles.register_oracle("pass_fail", PassFailOracle)
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "x"}) + "\n")
    (task,) = sources.load_tasks(str(data), oracle="pass_fail")
    assert isinstance(task.oracle, PassFailOracle) and task.oracle.judge("... PASS", "x")


def test_a_dataset_source_registered_first_reads_its_specs(registered):
    def load(request):
        return [
            Task(
                query=f"question {i}",
                answer=str(i),
                item_id=f"{request.spec}-{i}",
                dataset_id=request.spec,
                task_type="mine",
                oracle=PassFailOracle(),
            )
            for i in range(request.max_examples or 3)
        ]

    sources.register_source(sources.SourceKind("mine", lambda spec: spec.startswith("mine:"), load))
    tasks = sources.load_tasks("mine:demo", max_examples=2)
    assert [t.item_id for t in tasks] == ["mine:demo-0", "mine:demo-1"]
    with pytest.raises(PTSError, match="unknown dataset"):
        sources.load_tasks("nowhere:demo")
