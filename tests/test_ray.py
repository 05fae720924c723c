"""`--ray` (pts run, critical, eval, contrast sampling) on a real two-node Ray cluster (Ray's own
ray.cluster_utils.Cluster, on this machine)."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray  # pts[ray], which `make test` installs
from ray import cloudpickle
from ray.cluster_utils import Cluster

from pts.distributed import MAX_TRIES, WorkerPool
from pts.engines.fake import BranchingFakeEngine, PassFailOracle, planted_scenario, token
from pts.errors import PTSError
from pts.jobs.run import RunConfig, run
from pts.options import EngineOptions, ModelOptions, RayOptions, group_of
from pts.store import progress_path, read_jsonl
from pts.tasks.task import Task
from pts.work import search_work

SCRIPT, P_SCRIPT, FOLLOW = planted_scenario(random.Random(3), length=16, pivots=2)
QUERIES = [Task(f"q{i}?", "PASS", str(i), "fake", "fake", PassFailOracle()) for i in range(8)]
SETTINGS = dict(num_samples=8, max_generations=3, progress=False, min_prob=0.0, max_prob=1.0, parallel=1)


class Engine(BranchingFakeEngine):
    """The branching fake engine, optionally slowed down (so a run lasts long enough to be disturbed) and
    killing its own worker process on the first sample of one query (``kill_item``), once per ``marker``
    file or, without one, every time."""

    def __init__(self, delay=0.0, kill_item=None, marker=None, seed=0):
        super().__init__(P_SCRIPT, SCRIPT, prompt_length=3, follow=FOLLOW, seed=seed)
        self.delay, self.kill_item, self.marker = delay, kill_item, marker

    def sample(self, requests, params):
        prompt = tuple(token(c) for c in f"q{self.kill_item}?")
        if self.kill_item is not None and any(r.prefix_ids[:3] == prompt for r in requests):
            if self.marker is None or not os.path.exists(self.marker):
                if self.marker is not None:
                    open(self.marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.delay)
        return super().sample(requests, params)


class DistributionEngine(Engine):
    """With a next-token distribution (a fixed random one per prefix), so that `pts critical` measures Pass@k
    without the critical token too."""

    def next_token_logprobs(self, prefixes):
        rows = []
        for prefix in prefixes:
            rng = random.Random(str(list(prefix)))
            weights = {token(c): rng.random() + 0.1 for c in "abcdefgh"}
            total = sum(weights.values())
            row = [-math.inf] * 144
            for t, w in weights.items():
                row[t] = math.log(w / total)
            rows.append(row)
        return rows


def same_up_to_float_noise(a: list[str], b: list[str], places: int = 4) -> bool:
    """JSON lines equal once every float is rounded to ``places`` decimals (ids and counts compared exactly)."""

    def rounded(x):
        if isinstance(x, float):
            return round(x, places)
        if isinstance(x, list):
            return [rounded(v) for v in x]
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return x

    return [rounded(json.loads(line)) for line in a] == [rounded(json.loads(line)) for line in b]


def records(path):
    """Records without their write time, sorted: what must not depend on who searched what."""
    return sorted(
        json.dumps({k: v for k, v in r.items() if k != "timestamp"}, sort_keys=True) for r in read_jsonl(path)
    )


def done_items(path):
    return sorted(r["dataset_item_id"] for r in read_jsonl(progress_path(path)) if r.get("kind") == "item")


@pytest.fixture(scope="module")
def cluster():
    """A head and one more node, 2 logical CPUs each: room for a replacement worker when one node is gone."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    c.add_node(num_cpus=2)
    ray.init(address=c.address, log_to_driver=False, logging_level="WARNING")
    c.wait_for_nodes()
    # The engines of this test module travel to the workers by value: the module is not importable there.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The records of the same command in one process."""
    out = tmp_path_factory.mktemp("one-process") / "out.jsonl"
    run(RunConfig(output_path=str(out), **SETTINGS), Engine(), QUERIES)
    assert records(out)
    return records(out)


def ray_config(out, address, **kw):
    return RunConfig(output_path=str(out), ray=address, **{**SETTINGS, **kw})


def search_pool(config, engine):
    """The workers `pts run` would start for ``config``, each with a copy of ``engine``."""
    work = search_work(
        config.search_settings(),
        group_of(ModelOptions, config),
        group_of(EngineOptions, config),
        parallel=config.parallel,
    )
    return WorkerPool(group_of(RayOptions, config), work, engine)


def test_workers_on_two_nodes_give_the_records_of_one_process(cluster, reference, tmp_path):
    pool = search_pool(ray_config(tmp_path / "x", cluster.address), Engine())
    try:
        assert len(pool.nodes) == 2 and pool.model_id == "fake-branching"
    finally:
        pool.close()
    for workers, parallel in ((1, 1), (2, 1), (2, 3)):
        out = tmp_path / f"w{workers}p{parallel}.jsonl"
        summary = run(ray_config(out, cluster.address, ray_workers=workers, parallel=parallel), Engine(), QUERIES)
        assert summary.searched + summary.skipped == len(QUERIES) and not summary.failed
        assert records(out) == reference, (workers, parallel)


class Counting(Engine):
    """Counts its finished rollouts and tokens as the HF engine does (what the live progress display reads);
    after its first call it waits for the file ``gate``."""

    rollouts_done = tokens_done = 0

    def __init__(self, gate):
        super().__init__()
        self.gate = gate

    def sample(self, requests, params):
        while self.rollouts_done and not os.path.exists(self.gate):
            time.sleep(0.02)
        out = super().sample(requests, params)
        self.rollouts_done += sum(len(rs) for rs in out)
        self.tokens_done += sum(len(r.token_ids) for rs in out for r in rs)
        return out


def test_live_progress_counts_the_rollouts_of_every_worker_while_they_run(cluster, tmp_path):
    gate = tmp_path / "go"
    pool = search_pool(ray_config(tmp_path / "x", cluster.address, ray_workers=2, parallel=1), Counting(str(gate)))
    try:
        assert pool.counters() == (0, 0)
        done = []
        mapping = threading.Thread(target=pool.map, args=(QUERIES[:4], lambda u, r: done.append(r.rollouts)))
        mapping.start()
        # Each worker's one unit now waits inside the engine, holding its only slot for units: the poll still answers.
        deadline = time.monotonic() + 60
        while (pool.counters() or (0, 0))[0] < 2 * 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        first = pool.counters()
        assert first[0] == 2 * 8 and not done  # each worker's first call: 8 rollouts of its first query
        gate.touch()
        mapping.join(timeout=120)
        assert len(done) == 4 and pool.counters()[0] == sum(done) > first[0]
    finally:
        gate.touch()
        pool.close()


def test_a_killed_worker_is_replaced_and_its_query_retried(cluster, reference, tmp_path, caplog):
    marker = tmp_path / "killed-once"
    out = tmp_path / "out.jsonl"
    summary = run(ray_config(out, cluster.address, ray_workers=2), Engine(kill_item=3, marker=str(marker)), QUERIES)
    assert marker.exists() and "a Ray worker died" in caplog.text
    assert not summary.failed and done_items(out) == [str(i) for i in range(8)]
    assert records(out) == reference


def test_a_query_that_keeps_killing_workers_is_reported_and_skipped(cluster, reference, tmp_path):
    out = tmp_path / "out.jsonl"
    summary = run(ray_config(out, cluster.address, ray_workers=2), Engine(kill_item=5), QUERIES)
    assert summary.failed == ["5"] and "failed: 1 queries killed their worker" in summary.format()
    assert done_items(out) == [str(i) for i in range(8) if i != 5]
    assert records(out) == [r for r in reference if json.loads(r)["dataset_item_id"] != "5"]
    assert MAX_TRIES == 3


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import test_ray
from ray import cloudpickle
from pts.jobs.run import run
cloudpickle.register_pickle_by_value(test_ray)
if sys.argv[3] == "run":
    run(test_ray.ray_config(sys.argv[1], sys.argv[2], ray_workers=2), test_ray.Engine(delay=0.05), test_ray.QUERIES)
else:
    test_ray.run_critical(sys.argv[1], test_ray.DistributionEngine(delay=0.05), ray=sys.argv[2], ray_workers=2,
                          parallel=1)  # two queries in flight: results are written a few at a time
"""


@pytest.mark.parametrize("command", ["run", "critical"])
def test_a_killed_driver_resumes_with_every_query_once(cluster, request, tmp_path, command):
    expected = (
        request.getfixturevalue("reference")
        if command == "run"
        else request.getfixturevalue("critical_reference")["all"][0]
    )
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=os.path.dirname(__file__)))
    out = tmp_path / "out.jsonl"
    args = [sys.executable, str(script), str(out), cluster.address, command]
    driver = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            if progress_path(out).exists() and len(done_items(out)) >= 2:
                break
            time.sleep(0.05)
        assert driver.poll() is None, driver.stderr.read()
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert 2 <= len(done_items(out)) < 8
    read_jsonl(out)  # every line parses
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert done_items(out) == [str(i) for i in range(8)]
    assert records(out) == expected


@pytest.mark.parametrize("command", ["run", "critical"])
def test_a_lost_node_is_survived(cluster, request, tmp_path, caplog, command):
    """Runs last of the run tests in this module: it takes a node away (and gives one back)."""
    out = tmp_path / "out.jsonl"
    outcome = {}
    if command == "run":
        expected = (request.getfixturevalue("reference"), [str(i) for i in range(8)])

        def job():
            return run(ray_config(out, cluster.address, ray_workers=2), Engine(delay=0.05), QUERIES)
    else:
        expected = request.getfixturevalue("critical_reference")["all"]

        def job():
            return run_critical(out, DistributionEngine(delay=0.05), ray=cluster.address, ray_workers=2, parallel=1)

    def work():
        try:
            outcome["summary"] = job()
        except BaseException as e:  # reported by the test thread
            outcome["error"] = e

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and thread.is_alive():
        if progress_path(out).exists() and len(done_items(out)) >= 1:
            break
        time.sleep(0.05)
    worker_node = next(n for n in cluster.list_all_nodes() if n is not cluster.head_node)
    cluster.remove_node(worker_node)
    done_when_lost = len(done_items(out))
    thread.join(timeout=180)
    cluster.add_node(num_cpus=2)
    assert not thread.is_alive() and "error" not in outcome, outcome
    assert 1 <= done_when_lost < 8 and not outcome["summary"].failed
    assert "a Ray worker died" in caplog.text  # the one on the lost node, replaced on the head
    assert (records(out), done_items(out)) == (expected[0], expected[1])


def test_without_ray_the_flag_is_one_line_exit_2(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "What is 1+1?", "answer": "2"}) + "\n")
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from pts.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "--ray",
            "--dataset",
            str(data),
            "--output-path",
            str(tmp_path / "out.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "pip install 'pts[ray]'" in lines[0], proc.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_the_embedded_model_on_two_workers_gives_the_records_of_one_process(cluster, embedded_engine, tmp_path):
    """float32 on CPU: each worker loads the model itself; per-query seeds make the samples the same."""
    from pts.tasks.sources import load_tasks

    dataset = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=6"
    tiny = dict(
        dataset=dataset,
        max_examples=2,
        num_samples=6,
        max_new_tokens=40,
        max_generations=2,
        min_prob=0.0,
        max_prob=1.0,
        seed=1,
        dtype="float32",
        device="cpu",
        verify_samples=16,
        progress=False,
        parallel=1,
    )
    tasks = load_tasks(dataset, max_examples=2, seed=1)
    one = tmp_path / "one.jsonl"
    run(RunConfig(output_path=str(one), **tiny), embedded_engine, tasks)
    out = tmp_path / "ray.jsonl"
    summary = run(RunConfig(output_path=str(out), ray=cluster.address, ray_workers=2, **tiny))
    assert summary.searched + summary.skipped == 2 and done_items(out) == ["0", "1"]
    # Counts, token ids and decisions are the same; sampling probabilities come from float32 forward passes of
    # other batch compositions in each process, so they (and what is computed from them) agree to ~1e-6.
    assert same_up_to_float_noise(records(out), records(one))
    traces = lambda p: sorted(json.dumps(t, sort_keys=True) for t in read_jsonl(f"{p}.trace.jsonl"))  # noqa: E731
    assert traces(one) and same_up_to_float_noise(traces(out), traces(one))


def test_max_pairs_keeps_the_same_queries_whoever_finishes_first(cluster, tmp_path):
    """--max-pairs commits results in dataset order, so which queries fill the quota is not a race."""
    limit = dict(SETTINGS, max_pairs=5)
    local = tmp_path / "local.jsonl"
    run(RunConfig(output_path=str(local), **{**limit, "parallel": 3}), Engine(), QUERIES)
    assert len(read_jsonl(local)) == 5
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.jsonl"
        # a slow engine so that the two workers' queries interleave
        summary = run(
            ray_config(out, cluster.address, ray_workers=workers, parallel=2, max_pairs=5), Engine(delay=0.01), QUERIES
        )
        assert summary.stopped_at_max_pairs and records(out) == records(local), workers
        assert done_items(out) == done_items(local), workers


def test_a_worker_ray_cannot_place_is_one_line_not_a_silent_wait(cluster, tmp_path, monkeypatch):
    import pts.distributed as distributed
    from pts.errors import PTSError

    monkeypatch.setattr(distributed, "PLACEMENT_TIMEOUT", 5.0)
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    with pytest.raises(
        PTSError,
        match="no Ray worker started within 5 s: the cluster has no room for a worker "
        "with --ray-num-cpus 1 --ray-num-gpus 1",
    ):
        run(ray_config(out, cluster.address, ray_num_gpus=1.0), Engine(), QUERIES)
    assert time.monotonic() - started < 60 and not out.exists()


# --- pts critical, pts eval and the sampling of pts contrast ------------------------------------------------------

CRITICAL = dict(num_trajectories=4, rollouts=8, pass_at_k=4, max_new_tokens=24, seed=1, progress=False)


def critical_config(out, **kw):
    from pts.jobs.critical import CriticalConfig

    return CriticalConfig(output_path=str(out), **{**CRITICAL, **kw})


def run_critical(out, engine, **kw):
    from pts.jobs.critical import run as critical

    return critical(critical_config(out, **kw), engine, QUERIES)


@pytest.fixture(scope="module")
def critical_reference(tmp_path_factory):
    """`pts critical` in one process: without a quota, and with one that cuts a query's trajectories short."""
    from collections import Counter

    base = tmp_path_factory.mktemp("critical-one-process")
    run_critical(base / "all.jsonl", DistributionEngine(), parallel=4)
    run_critical(base / "max5.jsonl", DistributionEngine(), parallel=1, max_trajectories=5)
    every = Counter(json.loads(r)["dataset_item_id"] for r in records(base / "all.jsonl"))
    kept = Counter(json.loads(r)["dataset_item_id"] for r in records(base / "max5.jsonl"))
    assert sum(every.values()) > 5 and any(json.loads(r)["alternatives"] for r in records(base / "all.jsonl"))
    # the quota ends inside a query: the last one written keeps only some of its trajectories
    assert sum(kept.values()) == 5 and any(0 < kept[i] < every[i] for i in kept), (every, kept)
    return {
        "all": (records(base / "all.jsonl"), done_items(base / "all.jsonl")),
        "max5": (records(base / "max5.jsonl"), done_items(base / "max5.jsonl")),
    }


def test_critical_in_one_process_gives_the_same_records_whatever_the_concurrency_or_an_interruption(
    critical_reference, tmp_path
):
    class Stopping(DistributionEngine):
        made = 0  # (FakeEngine counts its own calls in `calls`)

        def sample(self, requests, params):
            self.made += 1
            if self.made == 6:
                raise KeyboardInterrupt
            return super().sample(requests, params)

    for parallel in (1, 3, 8):
        out = tmp_path / f"p{parallel}.jsonl"
        run_critical(out, DistributionEngine(), parallel=parallel)
        assert (records(out), done_items(out)) == critical_reference["all"], parallel
    out = tmp_path / "resumed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_critical(out, Stopping(), parallel=3)
    assert len(done_items(out)) < len(QUERIES)
    run_critical(out, DistributionEngine(), parallel=3)
    assert (records(out), done_items(out)) == critical_reference["all"]


def test_critical_on_one_and_two_workers_writes_the_records_of_one_process(cluster, critical_reference, tmp_path):
    for workers, parallel in ((1, 1), (2, 2)):
        out = tmp_path / f"w{workers}.jsonl"
        summary = run_critical(out, DistributionEngine(), ray=cluster.address, ray_workers=workers, parallel=parallel)
        assert not summary.failed and summary.analysed == len(QUERIES)
        assert (records(out), done_items(out)) == critical_reference["all"], workers


def test_critical_max_trajectories_is_taken_in_dataset_order_on_any_number_of_workers(
    cluster, critical_reference, tmp_path, monkeypatch
):
    """The query that fills the quota is analysed again with the room left, as a local run analyses it."""
    from pts.jobs.critical import TakeQuota

    again = []
    commit = TakeQuota.__call__

    def spy(self, unit, result):
        more = commit(self, unit, result)
        again.extend((u[0].item_id, u[2]) for u in more)
        return more

    monkeypatch.setattr(TakeQuota, "__call__", spy)
    for workers in (1, 2):
        again.clear()
        out = tmp_path / f"w{workers}.jsonl"
        # a slow engine so that the workers' queries interleave and finish out of order
        summary = run_critical(
            out,
            DistributionEngine(delay=0.01),
            ray=cluster.address,
            ray_workers=workers,
            parallel=2,
            max_trajectories=5,
        )
        assert summary.stopped_at_max_trajectories and summary.trajectories == 5
        assert (records(out), done_items(out)) == critical_reference["max5"], workers
        assert again == [("2", 1)], workers  # item 2 found 2 incorrect trajectories; 1 was left


def test_critical_input_path_responses_on_two_workers_give_the_records_of_one_process(cluster, tmp_path):
    """--input-path: each unit carries its row's response to the worker, which tokenizes and scores it."""
    from pts.engines.fake import FakeTokenizer
    from pts.jobs.critical import run as critical
    from pts.tasks.oracles import ORACLES, register_oracle

    register_oracle("pass_fail", PassFailOracle)
    try:
        text = FakeTokenizer().decode(SCRIPT)  # the branching engine's own path: its p falls along it
        rows = [{"question": f"q{i}?", "answer": "PASS", "response": text[: 8 + i]} for i in range(4)]
        path = tmp_path / "responses.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        outs = {}
        for workers in (None, 2):
            out = outs[workers] = tmp_path / f"w{workers}.jsonl"
            extra = {} if workers is None else {"ray": cluster.address, "ray_workers": workers}
            summary = critical(
                critical_config(out, input_path=str(path), oracle="pass_fail", **extra), DistributionEngine()
            )
            assert summary.trajectories == 4 and not summary.failed, workers
        assert records(outs[None]) and (records(outs[2]), done_items(outs[2])) == (
            records(outs[None]),
            done_items(outs[None]),
        )
        assert sorted(json.loads(r)["response"] for r in records(outs[2])) == sorted(r["response"] for r in rows)
    finally:
        ORACLES.unregister("pass_fail")


def test_critical_worker_killed_by_a_query_is_replaced_and_the_query_retried(
    cluster, critical_reference, tmp_path, caplog
):
    marker = tmp_path / "killed-once"
    out = tmp_path / "out.jsonl"
    summary = run_critical(
        out, DistributionEngine(kill_item=3, marker=str(marker)), ray=cluster.address, ray_workers=2, parallel=1
    )
    assert marker.exists() and "a Ray worker died" in caplog.text and not summary.failed
    assert (records(out), done_items(out)) == critical_reference["all"]


def eval_outputs(out):
    """The rows and the summary of `pts eval`, without the seconds it took."""
    summary = json.loads((out / "summary.json").read_text())
    for r in summary["results"]:
        r.pop("seconds")
    return (out / "rows.jsonl").read_text(), summary


def run_eval(out, engines, **kw):
    from pts.jobs.eval import EvalConfig
    from pts.jobs.eval import run as evaluate

    out.mkdir()
    config = EvalConfig(
        model="a",
        compare=["b"],
        num_samples=4,
        max_new_tokens=24,
        seed=5,
        progress=False,
        output_path=str(out / "rows.jsonl"),
        summary_path=str(out / "summary.json"),
        **kw,
    )
    return evaluate(config, engines=engines, tasks=QUERIES)


def eval_engines(**kw):
    """Two models (the fake engine with two seeds), with batches of 2 queries (2 x batch size 4 / 4 samples)."""
    engines = {"a": Engine(**kw), "b": Engine(seed=1)}
    for e in engines.values():
        e.batch_size = 4
    return engines


def test_eval_on_one_and_two_workers_gives_the_rows_and_summary_of_one_process(cluster, tmp_path):
    run_eval(tmp_path / "local", eval_engines())
    reference = eval_outputs(tmp_path / "local")
    assert len(reference[0].splitlines()) == 2 * 8 * 4 and len(reference[1]["comparisons"]) == 1
    for workers in (1, 2):
        summary = run_eval(tmp_path / f"w{workers}", eval_engines(), ray=cluster.address, ray_workers=workers)
        assert not summary.failed
        assert eval_outputs(tmp_path / f"w{workers}") == reference, workers


def test_eval_batch_that_keeps_killing_workers_is_left_out_of_every_model(cluster, tmp_path):
    """Batches are 2 queries: items 4 and 5 go together, and leave both models' results (paired)."""
    summary = run_eval(tmp_path / "ray", eval_engines(kill_item=5), ray=cluster.address, ray_workers=2)
    assert summary.failed == ["4", "5"] and "skipped: 2 queries" in summary.format()
    rows, blob = eval_outputs(tmp_path / "ray")
    kept = [str(i) for i in range(8) if i not in (4, 5)]
    assert sorted({json.loads(r)["dataset_item_id"] for r in rows.splitlines()}) == kept
    assert [r["queries"] for r in blob["results"]] == [6, 6] and blob["comparisons"][0]["queries"] == 6
    local = QUERIES[:4] + QUERIES[6:]
    from pts.jobs.eval import EvalConfig
    from pts.jobs.eval import run as evaluate

    (tmp_path / "local").mkdir()
    config = EvalConfig(
        model="a",
        compare=["b"],
        num_samples=4,
        max_new_tokens=24,
        seed=5,
        progress=False,
        output_path=str(tmp_path / "local" / "rows.jsonl"),
    )
    evaluate(config, engines=eval_engines(), tasks=local)
    assert rows == (tmp_path / "local" / "rows.jsonl").read_text()


def test_contrast_sampling_on_one_and_two_workers_gives_the_trajectories_of_one_process(cluster, tmp_path):
    from pts.jobs.contrast import ContrastConfig, sample_trajectories

    settings = dict(
        num_trajectories=4, max_new_tokens=24, seed=2, progress=False, batch_size=4, output_dir=str(tmp_path / "ce")
    )
    engine = Engine()
    engine.batch_size = 4
    local, here, failed = sample_trajectories(ContrastConfig(**settings), engine, QUERIES)
    reference = [t.to_dict() for t in local]
    assert here is engine and not failed and len(reference) == 8 * 4
    assert {t["correct"] for t in reference} == {True, False}
    for workers in (1, 2):
        got, here, failed = sample_trajectories(
            ContrastConfig(ray=cluster.address, ray_workers=workers, **settings), engine, QUERIES
        )
        assert here is None and not failed
        assert [t.to_dict() for t in got] == reference, workers


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "--output-path", "{out}/rows.jsonl"],
        ["critical", "--output-path", "{out}/critical.jsonl"],
        ["contrast", "--output-dir", "{out}/ce"],
    ],
)
def test_without_ray_every_ray_flag_is_one_line_exit_2(tmp_path, command):
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "What is 1+1?", "answer": "2"}) + "\n")
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from pts.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [a.format(out=tmp_path) for a in command]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--ray", "--dataset", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "pip install 'pts[ray]'" in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl"]


def test_anchors_input_path_on_two_workers_gives_the_records_of_one_process_and_checks_inputs_first(cluster, tmp_path):
    """pts anchors runs on the same driver: its records on two Ray workers are those of one process, and a bad
    input response is refused by a worker's check (Writer.start, pool.ask) before the output exists."""
    from pts.engines.fake import SentenceFakeEngine
    from pts.jobs.anchors import AnchorsConfig
    from pts.jobs.anchors import run as anchors
    from pts.tasks.oracles import ORACLES, register_oracle

    sentences = ["First we add the numbers.", " The sum is seven.", " So the answer is seven."]
    alternatives = [" Maybe we subtract instead.", " The sum is eight.", " So the answer is eight."]

    def engine():
        return SentenceFakeEngine(sentences, alternatives, [0.5] * 3, [0.25, 0, 0], 1.0, prompt_length=len("q"))

    register_oracle("pass_fail", PassFailOracle)
    try:
        rows = [{"query": "q", "answer": "a", "response": "x", "response_ids": engine().solution()}] * 2
        path = tmp_path / "responses.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        outs = {}
        for workers in (None, 2):
            out = outs[workers] = tmp_path / f"w{workers}.jsonl"
            extra = {} if workers is None else {"ray": cluster.address, "ray_workers": workers}
            config = AnchorsConfig(
                input_path=str(path),
                output_path=str(out),
                oracle="pass_fail",
                similarity="exact",
                rollouts=16,
                first_rollouts=16,
                progress=False,
                chat_template=False,
                **extra,
            )
            summary = anchors(config, engine())
            assert summary.traces == 2 and summary.sentences == 8 and not summary.failed, workers
        assert records(outs[None]) and (records(outs[2]), done_items(outs[2])) == (
            records(outs[None]),
            done_items(outs[None]),
        )
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({"query": "q", "answer": "a", "response": "   "}) + "\n")
        out = tmp_path / "bad_out.jsonl"
        config = AnchorsConfig(
            input_path=str(bad),
            output_path=str(out),
            oracle="pass_fail",
            similarity="exact",
            progress=False,
            ray=cluster.address,
            ray_workers=1,
        )
        with pytest.raises(PTSError, match="no sentence"):
            anchors(config, engine())
        assert not out.exists()
    finally:
        ORACLES.unregister("pass_fail")
