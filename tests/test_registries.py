"""The extension points of docs/architecture.md: engines, oracles and dataset sources registered by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from pts import engines, formats
from pts.engines.fake import FakeEngine, PassFailOracle
from pts.errors import PTSError
from pts.jobs.run import RunConfig, run
from pts.registry import Registry
from pts.store import read_jsonl
from pts.tasks import oracles, sources
from pts.tasks.task import Task


@pytest.fixture
def registered():
    """Registries restored after the test."""
    kept = [(r, r.snapshot()) for r in (engines.ENGINES, oracles.ORACLES, sources.SOURCES, formats.FORMATS)]
    yield
    for registry, entries in kept:
        registry.restore(entries)


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


def test_an_entry_is_imported_on_first_use_and_an_unknown_one_is_named():
    reg = Registry("widget", "pts.test-widgets", {"json": "json:dumps", "bad": "json:nowhere"})
    assert reg.names() == ("json", "bad") and "json" in reg
    assert reg.get("json") is json.dumps
    with pytest.raises(PTSError, match="json has no nowhere"):
        reg.get("bad")
    with pytest.raises(PTSError, match="unknown --widget 'x'; available: json, bad"):
        reg.get("x", "--widget")
    reg.register("first", "json:loads", first=True)
    assert reg.names() == ("first", "json", "bad")


PLUGIN = """
from pts.engines.fake import PassFailOracle, create as fake_create
from pts.formats.base import Format
from pts.tasks.sources import SourceKind
from pts.tasks.task import Task


def create(model, *, device, dtype, batch_size):
    return fake_create(model, device=device, dtype=dtype, batch_size=batch_size)


class DemoOracle(PassFailOracle):
    name = "demo"


def load(request):
    count = int(request.spec.split(":", 1)[1])
    return [Task(f"question {i}", "PASS", f"q{i}", request.spec, "demo", DemoOracle()) for i in range(count)]


SOURCE = SourceKind("demo", lambda spec: spec.startswith("demo:"), load)


class DemoFormat(Format):
    name = "demo"
    what = "demo rows"
    shapes = {"demo_rows": "demo rows (a plugin)"}
    keys = ("demo_field",)
    noun = "demo rows"
    default_output = "demo.jsonl"

    def write(self, request):
        from pts.formats.base import Written
        from pts.store import write_jsonl

        write_jsonl(request.output, [{"demo_field": p.pivot_token} for p in request.pivots])
        return Written(len(request.pivots))


FORMAT = DemoFormat()
"""

ENTRY_POINTS = """
[pts.engines]
demo = pts_demo_plugin:create

[pts.oracles]
demo = pts_demo_plugin:DemoOracle

[pts.sources]
demo = pts_demo_plugin:SOURCE

[pts.formats]
demo = pts_demo_plugin:FORMAT
"""


def install_plugin(site):
    """A package outside pts, as pip installs it: the module and its dist-info with entry points, under ``site``."""
    (site / "pts_demo_plugin").mkdir(parents=True)
    (site / "pts_demo_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "pts_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pts-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def test_a_package_outside_pts_adds_an_engine_oracle_source_and_format_to_the_cli(tmp_path, pts_cli):
    site = install_plugin(tmp_path / "site")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "pivots.jsonl"
    args = ["--engine", "demo", "--model", "m", "--dataset", "demo:2", "--oracle", "demo", "--no-progress"]
    result = pts_cli("run", *args, "--output-path", str(out), "--num-samples", "4", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    records = read_jsonl(out)
    # Every query's verdict token is its pivot: p(success) 0.5 before it, 1 after PASS, 0 after FAIL.
    assert {r["dataset_item_id"] for r in records} == {"q0", "q1"}
    assert all(r["task_type"] == "demo" and r["prob_before"] == 0.5 for r in records)
    assert {r["pivot_token"] for r in records} <= {" PASS", " FAIL"} and records
    # Without the plugin on the path, the names are unknown: nothing was registered in pts itself.
    bare = pts_cli("run", *args, "--output-path", str(tmp_path / "no.jsonl"), cwd=tmp_path)
    assert bare.returncode == 2 and "unknown --engine 'demo'" in bare.stderr
    exported = pts_cli("export", "--input-path", out, "--format", "demo", cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    assert f"wrote {len(records)} demo rows to demo.jsonl" in exported.stdout
    assert [r["demo_field"] for r in read_jsonl(tmp_path / "demo.jsonl")] == [r["pivot_token"] for r in records]
    code = "from pts import formats; print(formats.detect({'demo_field': 1}).name, formats.names()[-1])"
    shown = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    assert shown.stdout.split() == ["demo", "demo"]


class TokenList(formats.Format):
    """A format of one line per pivot: its token and its effect (what a user might add for another consumer)."""

    name = "token-list"
    what = "pivot tokens"
    shapes = {"token_list": "pivot tokens (a test format)"}
    keys = ("token", "delta")
    noun = "tokens"
    view_list = "tokens"
    default_output = "tokens.jsonl"

    def write(self, request):
        from pts.store import write_jsonl

        rows = [{"query": p.query, "token": p.pivot_token, "delta": p.prob_delta} for p in request.pivots]
        write_jsonl(request.output, rows)
        return formats.base.Written(len(rows), f"{len(rows)} tokens")

    def view_row(self, record, where, query):
        return {"q": query(record["query"]), "token": record["token"], "delta": record["delta"]}


def test_a_dataset_source_oracle_and_format_registered_in_python_run_end_to_end(registered, tmp_path):
    from pts.jobs.export import ExportConfig
    from pts.jobs.export import run as export
    from pts.view.collect import collect

    class Verdict(PassFailOracle):
        name = "verdict"

    def load(request):
        count = int(request.spec.removeprefix("count:"))
        oracle = oracles.get_oracle(request.oracle or "verdict")
        return [Task(f"question {i}", "PASS", f"q{i}", request.spec, "count", oracle) for i in range(count)]

    engines.register_engine("fake", "pts.engines.fake:create")
    oracles.register_oracle("verdict", Verdict)
    sources.register_source(sources.SourceKind("count", lambda spec: spec.startswith("count:"), load))
    formats.register(TokenList())

    pivots = tmp_path / "pivots.jsonl"
    summary = run(
        RunConfig(engine="fake", dataset="count:3", oracle="verdict", output_path=str(pivots), progress=False)
    )
    records = read_jsonl(pivots)
    assert summary.searched == 3 and {r["dataset_item_id"] for r in records} == {"q0", "q1", "q2"}
    assert all(r["task_type"] == "count" and r["pivot_token"] in (" PASS", " FAIL") for r in records)

    out = tmp_path / "tokens.jsonl"
    written = export(ExportConfig(input_path=str(pivots), format="token-list", output_path=str(out)))
    rows = read_jsonl(out)
    assert written.format().startswith(f"wrote {len(records)} tokens to {out}")
    assert [(r["token"], r["delta"]) for r in rows] == [(r["pivot_token"], r["prob_delta"]) for r in records]
    assert formats.detect(rows[0]).name == "token-list"

    report = collect([str(pivots), str(out)]).to_dict()
    assert [f["kind"] for f in report["files"]] == ["pivotal_tokens", "token_list"]
    assert [(r["token"], r["delta"]) for r in report["tokens"]] == [(r["token"], r["delta"]) for r in rows]
    assert {report["queries"][r["q"]] for r in report["tokens"]} == {"question 0", "question 1", "question 2"}
    with pytest.raises(PTSError, match="pts export does not write 'trace' files; --format is one of dpo, .*token-list"):
        export(ExportConfig(input_path=str(pivots), format="trace", output_path=str(tmp_path / "t.jsonl")))
