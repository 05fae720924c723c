"""The code oracle: reading programs out of completions, judging them by their tests, code datasets."""

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pts.errors import PTSError
from pts.tasks import get_oracle, load_tasks
from pts.tasks.code import JAVASCRIPT, PYTHON, CodeOracle, CodeReference, split_code
from pts.tasks.code_data import read_humaneval


def require(condition: bool, what: str) -> None:
    """Skip without ``what`` on a developer machine; under CI a missing tool is a failure."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is needed by this test; CI must install it (make install does)")
        pytest.skip(f"{what} is not available")


ADD = CodeReference(
    header='def add(a, b):\n    """Sum of a and b."""\n', tests="assert add(1, 2) == 3\n", entry_point="add"
)


@pytest.fixture(scope="module")
def humaneval():
    return load_tasks("humaneval", max_examples=None), {r["task_id"]: r for r in read_humaneval()}


@pytest.mark.parametrize(
    "completion, code, fenced, complete",
    [
        # Raw continuation of a header: the body, ended by a line at column 0 or a fence.
        ("    return a + b\n", "    return a + b\n", False, False),
        ("    return a + b\n\nprint(add(1, 2))\n", "    return a + b\n\n", False, True),
        ("    return a + b\n```\nMore text", "    return a + b\n", False, True),
        ("    x = a\n\n    return x + b\n", "    x = a\n\n    return x + b\n", False, False),
        # A chat reply: prose, then a fenced block (the first one).
        ("Sure!\n```python\ndef add(a, b):\n    return a + b\n", "def add(a, b):\n    return a + b\n", True, False),
        (
            "Sure!\n```python\ndef add(a, b):\n    return a + b\n```\nDone.\n```python\nx\n```",
            "def add(a, b):\n    return a + b\n",
            True,
            True,
        ),
        ("```py", "", True, False),
        ("Let me think", "Let me think", False, False),
    ],
)
def test_split_code(completion, code, fenced, complete):
    assert split_code(completion, PYTHON) == (code, fenced, complete)


def test_javascript_function_ends_at_its_closing_brace():
    assert split_code("  return a + b;\n}\nconsole.log(1)", JAVASCRIPT) == ("  return a + b;\n}", False, True)
    assert split_code("  return a + b;\n", JAVASCRIPT)[2] is False


def test_answer_complete_ignores_reasoning_and_waits_for_the_end():
    oracle = CodeOracle()
    assert not oracle.answer_complete("<think>```python\nx\n```")
    assert oracle.answer_complete("<think>plan</think>```python\nx = 1\n```")
    assert not oracle.answer_complete("    return a + b\n")
    assert oracle.answer_complete("    return a + b\nd")


def test_program_keeps_the_header_before_a_whole_function():
    oracle = CodeOracle()
    whole = "```python\ndef add(a, b):\n    return a + b\n```"
    assert oracle.program(whole, ADD).startswith(ADD.header + "\n" + "def add(a, b):")
    body = "```python\n    return a + b\n```"
    assert oracle.program(body, ADD).startswith(ADD.header + "    return a + b\n")
    assert oracle.program("    return a + b\n", ADD) == ADD.header + "    return a + b\n\n\n" + ADD.tests + "\n"


@pytest.mark.parametrize(
    "completion, ok",
    [
        ("    return a + b\n", True),
        ("```python\ndef add(a, b):\n    return a + b\n```", True),
        ("    return a - b\n", False),
        ("    return a +\n", False),  # syntax error
        ("    raise SystemExit(0)\n", False),  # exits 0 before the tests have run: no pass marker
        ("    import os; os._exit(0)\n", False),
        ("", False),
    ],
)
def test_judge_runs_the_tests(completion, ok):
    assert CodeOracle().judge(completion, ADD) is ok


def test_judge_rejects_a_reference_without_tests():
    assert CodeOracle().judge("    return a + b\n", "3") is False


def test_verdicts_are_cached_by_program_text():
    oracle = CodeOracle(workers=2)
    verdicts = oracle.judge_many(["    return a + b\n"] * 5 + ["    return a - b\n"] * 3, ADD)
    assert verdicts == [True] * 5 + [False] * 3
    stats = oracle.stats()
    assert stats["executions"] == 2 and stats["cache_hits"] == 6 and stats["hit_rate"] == 6 / 8
    # Text after the end of the function does not change the program, so it is a hit too.
    assert oracle.judge("    return a + b\nprint('noise')\n", ADD) and oracle.stats()["executions"] == 2


def test_judge_many_of_any_oracle_judges_each_in_order():
    math = get_oracle("math")
    assert math.judge_many(["The answer is 3.", "It is 4.", "3"], "3") == [True, False, True]


def test_oracle_survives_pickling():
    import pickle

    oracle = pickle.loads(pickle.dumps(CodeOracle(workers=3)))
    assert oracle.workers == 3 and oracle.judge("    return a + b\n", ADD)


def test_every_humaneval_solution_passes_and_every_corrupted_one_fails(humaneval):
    tasks, rows = humaneval
    assert len(tasks) == 164
    oracle = tasks[0].oracle
    assert all(t.oracle is oracle for t in tasks)

    def verdicts(task):
        solution = rows[task.item_id]["canonical_solution"]
        whole = f"Here it is:\n```python\n{task.reference.header}{solution}```\n"
        return task.judge(solution), task.judge(whole), task.judge("    return None\n")

    start = time.perf_counter()
    with ThreadPoolExecutor(oracle.workers * 2) as pool:
        results = dict(zip((t.item_id for t in tasks), pool.map(verdicts, tasks)))
    seconds = time.perf_counter() - start
    assert [k for k, (raw, _, _) in results.items() if not raw] == []
    assert [k for k, (_, fenced, _) in results.items() if not fenced] == []
    assert [k for k, (_, _, broken) in results.items() if broken] == []
    assert oracle.stats()["executions"] == 3 * 164 and seconds < 180


def test_humaneval_tasks_prompt_chat_and_base_models(humaneval):
    tasks, rows = humaneval
    task = tasks[0]
    header = rows["HumanEval/0"]["prompt"]
    assert task.query == header and task.raw_prompt == header
    assert task.prompt.endswith("```python\n" + header) and task.prompt.startswith("Complete the following Python")
    assert task.answer == rows["HumanEval/0"]["canonical_solution"]
    assert task.task_type == "code" and task.metadata["entry_point"] == "has_close_elements"
    assert "check(has_close_elements)" in task.reference.tests


def _write(path, rows):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps({"data": rows}))
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise AssertionError(path)


MBPP_ROWS = [
    {
        "task_id": 11,
        "text": "Write a python function to remove first and last occurrence of a given character.",
        "code": "def remove_Occ(s,ch):\r\n    s = s.replace(ch, '', 1)\r\n    return s[::-1].replace(ch, '', 1)[::-1]",
        "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"'],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
    {
        "task_id": 12,
        "text": "Write a function to square a number.",
        "code": "import math\ndef sq(x):\n    return x*x",
        "test_list": ["assert math.isclose(sq(1.5), 2.25)", "assert sq(3) == 9"],
        "test_setup_code": "import math",
        "challenge_test_list": [],
    },
]


@pytest.mark.parametrize("name", ["he.jsonl", "he.json", "he.parquet"])
def test_humaneval_shape_is_detected_in_local_files(tmp_path, humaneval, name):
    _, rows = humaneval
    path = tmp_path / name
    _write(path, [rows["HumanEval/2"], rows["HumanEval/3"]])
    tasks = load_tasks(str(path))
    assert [t.item_id for t in tasks] == ["HumanEval/2", "HumanEval/3"]
    assert all(t.judge(t.answer) and not t.judge("    return None\n") for t in tasks)


def test_humaneval_shape_in_csv(tmp_path, humaneval):
    import csv

    _, rows = humaneval
    path = tmp_path / "he.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows["HumanEval/4"]))
        writer.writeheader()
        writer.writerow(rows["HumanEval/4"])
    (task,) = load_tasks(str(path))
    assert task.judge(task.answer)


@pytest.mark.parametrize("text_key", ["text", "prompt"])
def test_mbpp_shape_is_detected(tmp_path, text_key):
    path = tmp_path / "mbpp.jsonl"
    rows = [{**{k: v for k, v in r.items() if k != "text"}, text_key: r["text"]} for r in MBPP_ROWS]
    _write(path, rows)
    tasks = load_tasks(str(path))
    assert [t.metadata["entry_point"] for t in tasks] == ["remove_Occ", "sq"]
    assert tasks[0].prompt.endswith("```python\n") and 'assert remove_Occ("hello","l")' in tasks[0].prompt
    for task in tasks:
        assert task.judge(f"```python\n{task.answer}\n```")
        assert task.judge(task.answer.replace("\r\n", "\n") + "\n```")  # a base model continuing the open block
        assert not task.judge("```python\ndef remove_Occ(s, ch):\n    return s\n```")


def test_mbpp_shape_in_a_dataset_directory(tmp_path):
    # The Hub path (datasets.load_dataset) on a local directory of the same shape.
    folder = tmp_path / "mbpp"
    folder.mkdir()
    _write(folder / "train.jsonl", MBPP_ROWS)
    tasks = load_tasks(str(folder))
    assert len(tasks) == 2 and tasks[0].dataset_id.startswith(str(folder))
    assert tasks[1].judge(f"```python\n{tasks[1].answer}\n```")


def test_explicit_fields_keep_the_generic_reading(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    _write(path, MBPP_ROWS)
    (task, _) = load_tasks(str(path), query_key="text", answer_key="code")
    assert task.task_type == "exact"


@pytest.mark.parametrize(
    "spec, kwargs, message",
    [
        ("rg:chain_sum", {"oracle": "code"}, "reasoning-gym tasks have none"),
        ("humaneval", {"oracle": "code:ruby"}, "unknown code language 'ruby'"),
        ("QA", {"oracle": "code"}, "no code task shape"),
    ],
)
def test_bad_code_requests(tmp_path, spec, kwargs, message):
    if spec == "QA":
        spec = str(tmp_path / "qa.jsonl")
        _write(tmp_path / "qa.jsonl", [{"question": "1+1?", "answer": "2"}])
    with pytest.raises(PTSError, match=message):
        load_tasks(spec, **kwargs)


def test_cli_bad_code_oracle_is_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pts",
            "run",
            "--dataset",
            "humaneval",
            "--oracle",
            "code:cobol",
            "--output-path",
            str(tmp_path / "o.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown code language 'cobol'" in proc.stderr
    assert get_oracle("humaneval").name == "code"


JS_ROW = {
    "task_id": "JavaScript/0",
    "entry_point": "add",
    "prompt": "/* Sum of a and b. */\nconst add = (a, b) => {\n",
    "canonical_solution": "  return a + b;\n}\n",
    "test": "const testAdd = () => {\n  console.assert = null;\n  if (add(1, 2) !== 3) throw new Error('add');\n}\n"
    "testAdd()\n",
}


def test_javascript_task_through_node(tmp_path):
    require(shutil.which("node") is not None, "node (apt-get install nodejs)")
    path = tmp_path / "js.jsonl"
    _write(path, [JS_ROW])
    (task,) = load_tasks(str(path))
    assert task.task_type == "code:javascript" and task.prompt.endswith("```javascript\n" + JS_ROW["prompt"])
    assert task.judge(JS_ROW["canonical_solution"])
    assert task.judge("```js\nconst add = (a, b) => a + b;\n```")
    assert not task.judge("  return a - b;\n}\n")
    assert not task.judge("  process.exit(0);\n}\n")


def test_check_refuses_a_sandbox_that_cannot_reach_a_verdict(monkeypatch):
    from pts.tasks import code

    oracle = CodeOracle(workers=1)
    oracle.check()  # the interpreter runs, and the judge and candidate sandboxes reach a verdict
    monkeypatch.setattr(code, "_BRIDGE_SOURCE", "import sys\nsys.exit('the bridge is broken')\n")
    with pytest.raises(PTSError, match="cannot judge a program in its sandbox: the bridge is broken"):
        oracle.check()


@pytest.mark.parametrize(
    "solution, ok",
    [
        ("    return sorted(xs)\n", True),
        ("    xs.sort()\n    return xs\n", True),
        ("    return tuple(sorted(xs))\n", False),  # a tuple is not the list the tests compare with
        ("    return iter(sorted(xs))\n", False),  # not plain data
        ("    raise ValueError('no')\n", False),
    ],
)
def test_values_cross_to_the_tests_as_plain_data(solution, ok):
    reference = CodeReference(
        "def ordered(xs):\n",
        "xs = [3, 1, 2]\nassert ordered(xs) == [1, 2, 3]\nassert ordered([]) == []\n"
        "assert ordered([2.5, float('inf'), -0.0]) == [-0.0, 2.5, float('inf')]\n",
        "ordered",
    )
    assert CodeOracle(workers=1).judge(solution, reference) is ok


def test_a_test_sees_what_the_function_did_to_its_list_argument():
    reference = CodeReference("def push(xs, x):\n", "xs = [1]\npush(xs, 2)\nassert xs == [1, 2]\n", "push")
    oracle = CodeOracle(workers=1)
    assert oracle.judge("    xs.append(x)\n", reference)
    assert not oracle.judge("    xs = xs + [x]\n", reference)
