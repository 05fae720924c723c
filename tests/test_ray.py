"""`pts run --ray` on a real two-node Ray cluster (Ray's own ray.cluster_utils.Cluster, on this machine)."""

import json
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
from pts.jobs.run import RunConfig, run
from pts.store import progress_path, read_jsonl
from pts.tasks.task import Task

SCRIPT, P_SCRIPT, FOLLOW = planted_scenario(random.Random(3), length=16, pivots=2)
QUERIES = [Task(f"q{i}?", "PASS", str(i), "fake", "fake", PassFailOracle()) for i in range(8)]
SETTINGS = dict(num_samples=8, max_generations=3, progress=False, min_prob=0.0, max_prob=1.0, parallel=1)


class Engine(BranchingFakeEngine):
    """The branching fake engine, optionally slowed down (so a run lasts long enough to be disturbed) and
    killing its own worker process on the first sample of one query (``kill_item``), once per ``marker``
    file or, without one, every time."""

    def __init__(self, delay=0.0, kill_item=None, marker=None):
        super().__init__(P_SCRIPT, SCRIPT, prompt_length=3, follow=FOLLOW, seed=0)
        self.delay, self.kill_item, self.marker = delay, kill_item, marker

    def sample(self, requests, params):
        if self.kill_item is not None and requests[0].prefix_ids[:3] == tuple(token(c) for c in f"q{self.kill_item}?"):
            if self.marker is None or not os.path.exists(self.marker):
                if self.marker is not None:
                    open(self.marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.delay)
        return super().sample(requests, params)


def records(path):
    """Records without their write time, sorted: what must not depend on who searched what."""
    return sorted(json.dumps({k: v for k, v in r.items() if k != "timestamp"}, sort_keys=True)
                  for r in read_jsonl(path))


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


def test_workers_on_two_nodes_give_the_records_of_one_process(cluster, reference, tmp_path):
    pool = WorkerPool(ray_config(tmp_path / "x", cluster.address), Engine())
    try:
        assert len(pool.nodes) == 2 and pool.model_id == "fake-branching"
    finally:
        pool.close()
    for workers, parallel in ((1, 1), (2, 1), (2, 3)):
        out = tmp_path / f"w{workers}p{parallel}.jsonl"
        summary = run(ray_config(out, cluster.address, ray_workers=workers, parallel=parallel), Engine(), QUERIES)
        assert summary.searched + summary.skipped == len(QUERIES) and not summary.failed
        assert records(out) == reference, (workers, parallel)


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
run(test_ray.ray_config(sys.argv[1], sys.argv[2], ray_workers=2),
    test_ray.Engine(delay=0.05), test_ray.QUERIES)
"""


def test_a_killed_driver_resumes_with_every_query_once(cluster, reference, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=os.path.dirname(__file__)))
    out = tmp_path / "out.jsonl"
    args = [sys.executable, str(script), str(out), cluster.address]
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
    assert records(out) == reference


def test_a_lost_node_is_survived(cluster, reference, tmp_path, caplog):
    """Runs last in this module: it takes a node away (and gives one back)."""
    out = tmp_path / "out.jsonl"
    outcome = {}

    def search():
        try:
            outcome["summary"] = run(ray_config(out, cluster.address, ray_workers=2), Engine(delay=0.05), QUERIES)
        except BaseException as e:  # reported by the test thread
            outcome["error"] = e

    thread = threading.Thread(target=search)
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
    assert done_items(out) == [str(i) for i in range(8)]
    assert records(out) == reference


def test_without_ray_the_flag_is_one_line_exit_2(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "What is 1+1?", "answer": "2"}) + "\n")
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "from pts.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "run", "--ray", "--dataset", str(data),
                           "--output-path", str(tmp_path / "out.jsonl")], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "pip install 'pts[ray]'" in lines[0], proc.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_the_embedded_model_on_two_workers_gives_the_records_of_one_process(cluster, embedded_engine, tmp_path):
    """float32 on CPU: each worker loads the model itself; per-query seeds make the samples the same."""
    from pts.tasks.sources import load_tasks

    dataset = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=6"
    tiny = dict(dataset=dataset, max_examples=2, num_samples=6, max_new_tokens=40, max_generations=2, min_prob=0.0,
                max_prob=1.0, seed=1, dtype="float32", device="cpu", verify_samples=16, progress=False, parallel=1)
    tasks = load_tasks(dataset, max_examples=2, seed=1)
    one = tmp_path / "one.jsonl"
    run(RunConfig(output_path=str(one), **tiny), embedded_engine, tasks)
    out = tmp_path / "ray.jsonl"
    summary = run(RunConfig(output_path=str(out), ray=cluster.address, ray_workers=2, **tiny))
    assert summary.searched + summary.skipped == 2 and done_items(out) == ["0", "1"]
    assert records(out) == records(one)
    traces = lambda p: sorted(json.dumps(t, sort_keys=True) for t in read_jsonl(f"{p}.trace.jsonl"))  # noqa: E731
    assert traces(one) and traces(out) == traces(one)


def test_max_pairs_keeps_the_same_queries_whoever_finishes_first(cluster, tmp_path):
    """--max-pairs commits results in dataset order, so which queries fill the quota is not a race."""
    limit = dict(SETTINGS, max_pairs=5)
    local = tmp_path / "local.jsonl"
    run(RunConfig(output_path=str(local), **{**limit, "parallel": 3}), Engine(), QUERIES)
    assert len(read_jsonl(local)) == 5
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.jsonl"
        # a slow engine so that the two workers' queries interleave
        summary = run(ray_config(out, cluster.address, ray_workers=workers, parallel=2, max_pairs=5),
                      Engine(delay=0.01), QUERIES)
        assert summary.stopped_at_max_pairs and records(out) == records(local), workers
        assert done_items(out) == done_items(local), workers


def test_a_worker_ray_cannot_place_is_one_line_not_a_silent_wait(cluster, tmp_path, monkeypatch):
    import pts.distributed as distributed
    from pts.errors import PTSError

    monkeypatch.setattr(distributed, "PLACEMENT_TIMEOUT", 5.0)
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    with pytest.raises(PTSError, match="no Ray worker started within 5 s: the cluster has no room for a worker "
                                       "with --ray-num-cpus 1 --ray-num-gpus 1"):
        run(ray_config(out, cluster.address, ray_num_gpus=1.0), Engine(), QUERIES)
    assert time.monotonic() - started < 60 and not out.exists()
