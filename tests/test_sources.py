"""Dataset sources: local files of each format, dataset directories, reasoning-gym specs, errors."""

import csv
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from pts.errors import PTSError
from pts.tasks import DEFAULT_DATASET, load_tasks
from pts.tasks.oracles import (
    ExactMatchOracle,
    MathOracle,
    MultipleChoiceOracle,
    ReasoningGymOracle,
    YesNoOracle,
)

ROWS = [
    {"question": "What is 2 + 3?", "answer": "5"},
    {"question": "What is 10 - 4?", "answer": "6"},
    {"question": "What is 3 * 3?", "answer": "9"},
]


def write_csv(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize(
    "name, write",
    [
        ("data.jsonl", write_jsonl),
        ("data.json", lambda p, rows: p.write_text(json.dumps(rows)) and p),
        ("wrapped.json", lambda p, rows: p.write_text(json.dumps({"data": rows, "version": 2})) and p),
        ("data.csv", write_csv),
        ("data.parquet", write_parquet),
    ],
)
def test_local_file_formats(tmp_path, name, write):
    path = tmp_path / name
    write(path, ROWS)
    tasks = load_tasks(str(path))
    assert [t.query for t in tasks] == [r["question"] for r in ROWS]
    assert [t.answer for t in tasks] == ["5", "6", "9"]
    assert [t.item_id for t in tasks] == ["0", "1", "2"]
    assert all(isinstance(t.oracle, MathOracle) and t.task_type == "math" for t in tasks)
    assert tasks[0].prompt == tasks[0].query and tasks[0].reference == "5"
    assert tasks[0].dataset_id == str(path)
    assert tasks[0].judge("2 + 3 = 5") and not tasks[0].judge("2 + 3 = 6")


@pytest.mark.parametrize("query_key", ["question", "query", "instruction", "problem", "prompt"])
@pytest.mark.parametrize("answer_key", ["answer", "output", "solution", "response", "canonical_solution"])
def test_field_auto_detection(tmp_path, query_key, answer_key):
    path = write_jsonl(tmp_path / "d.jsonl", [{query_key: "Capital of France?", answer_key: "Paris", "extra": 1}])
    (task,) = load_tasks(str(path))
    assert (task.query, task.answer) == ("Capital of France?", "Paris")
    assert isinstance(task.oracle, ExactMatchOracle) and task.task_type == "exact"


def test_field_priority_and_overrides(tmp_path):
    rows = [{"prompt": "p", "question": "q", "output": "o", "answer": "a", "label": "7"}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    (task,) = load_tasks(str(path))
    assert (task.query, task.answer) == ("q", "a")
    (task,) = load_tasks(str(path), query_key="prompt", answer_key="label")
    assert (task.query, task.answer) == ("p", "7")
    assert task.metadata["output"] == "o"


def test_id_column_and_metadata(tmp_path):
    rows = [{"task_id": "T/1", "problem": "x", "solution": "\\boxed{\\frac{1}{2}}", "level": "Level 2"}]
    (task,) = load_tasks(str(write_jsonl(tmp_path / "math.jsonl", rows)))
    assert task.item_id == "T/1"
    assert task.answer == "\\frac{1}{2}" and task.task_type == "math"
    assert task.metadata["level"] == "Level 2" and task.metadata["source_index"] == 0


@pytest.mark.parametrize(
    "answer, oracle_cls, task_type, gold",
    [
        ("Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7", MathOracle, "gsm8k", "7"),
        ("Adding gives $\\boxed{\\frac{3}{4}}$.", MathOracle, "math", "\\frac{3}{4}"),
        ("(B)", MultipleChoiceOracle, "multiple_choice", "B"),
        ("(c)", MultipleChoiceOracle, "multiple_choice", "C"),
        ("E.", MultipleChoiceOracle, "multiple_choice", "E"),
        ("a", ExactMatchOracle, "exact", "a"),
        ("Yes", YesNoOracle, "yes_no", "yes"),
        ("false", YesNoOracle, "yes_no", "false"),
        ("-12.5", MathOracle, "math", "-12.5"),
        ("\\sqrt{2}", MathOracle, "math", "\\sqrt{2}"),
        ("the Nile", ExactMatchOracle, "exact", "the Nile"),
    ],
)
def test_auto_oracle_choice(tmp_path, answer, oracle_cls, task_type, gold):
    (task,) = load_tasks(str(write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": answer}])))
    assert isinstance(task.oracle, oracle_cls)
    assert (task.task_type, task.answer) == (task_type, gold)


def test_named_oracle_overrides_choice(tmp_path):
    tasks = load_tasks(str(write_jsonl(tmp_path / "d.jsonl", ROWS)), oracle="exact")
    assert all(isinstance(t.oracle, ExactMatchOracle) and t.task_type == "exact" for t in tasks)


def test_gsm8k_shaped_directory(tmp_path):
    directory = tmp_path / "gsm8k"
    directory.mkdir()
    rows = [
        {
            "question": "Natalia sold 48 clips in April and half as many in May. How many in total?",
            "answer": "In May she sold 48/2 = <<48/2=24>>24.\nAltogether 48+24 = <<48+24=72>>72.\n#### 72",
        },
        {
            "question": "Weng earns $12 an hour. How much for 50 minutes?",
            "answer": "12/60 = <<12/60=0.2>>0.2 per minute.\n0.2 x 50 = <<0.2*50=10>>10.\n#### 10",
        },
    ]
    write_parquet(directory / "train-00000-of-00001.parquet", rows)
    write_parquet(directory / "test-00000-of-00001.parquet", rows[:1])
    tasks = load_tasks(str(directory), split="train")
    assert [t.answer for t in tasks] == ["72", "10"]
    assert all(isinstance(t.oracle, MathOracle) and t.task_type == "gsm8k" for t in tasks)
    assert tasks[0].metadata["raw_answer"].endswith("#### 72")
    assert tasks[0].judge("48 + 24 = 72\n#### 72") and not tasks[0].judge("#### 70")
    assert tasks[0].dataset_id == f"{directory}?split=train"
    assert len(load_tasks(str(directory), split="test")) == 1
    with pytest.raises(PTSError, match="could not load dataset directory .*validation"):
        load_tasks(str(directory), split="validation")


def test_optillmbench_shaped_directory(tmp_path):
    directory = tmp_path / "optillmbench"
    directory.mkdir()
    rows = [
        {
            "id": "gsm8k_0001",
            "category": "gsm8k",
            "question": "Tom has 3 bags of 4 apples. How many apples?",
            "answer": "3 bags of 4 is 3*4 = <<3*4=12>>12 apples. #### 12",
        },
        {"id": "mmlu_math_0002", "category": "mmlu_math", "question": "Find 1/2 + 1/4.", "answer": "3/4"},
        {
            "id": "mmlu_math_0003",
            "category": "mmlu_math",
            "question": "Which set is a group?",
            "answer": "The integers under addition",
        },
        {"id": "boolq_0004", "category": "boolq", "question": "Context: ...\nQuestion: is water wet", "answer": "Yes"},
        {
            "id": "aqua_rat_0005",
            "category": "aqua_rat",
            "question": "A train... Options: A) 1 B) 2 C) 3",
            "answer": "C",
        },
    ]
    write_parquet(directory / "train.parquet", rows)
    tasks = {t.item_id: t for t in load_tasks(str(directory))}
    gsm, mmlu, mmlu_text, boolq, aqua = (tasks[r["id"]] for r in rows)

    assert gsm.prompt.startswith("Solve this math problem step by step. After solving, provide the final numerical")
    assert "Question: Tom has 3 bags" in gsm.prompt and gsm.prompt.endswith("give the final answer after '### '.")
    assert gsm.query == rows[0]["question"] and gsm.answer == "12"
    assert isinstance(gsm.oracle, MathOracle) and gsm.task_type == "optillmbench:gsm8k"
    assert gsm.judge("3 * 4 = 12\n### 12") and not gsm.judge("### 13")

    assert (
        mmlu.prompt
        == "Solve this math problem. Provide only the answer with no explanation.\n\nQuestion: Find 1/2 + 1/4."
    )
    assert isinstance(mmlu.oracle, MathOracle) and mmlu.judge("0.75")
    assert isinstance(mmlu_text.oracle, ExactMatchOracle) and mmlu_text.judge("The integers under addition.")

    assert boolq.prompt.startswith("Answer this yes/no question with only 'yes' or 'no'.\n\nQuestion: Context:")
    assert isinstance(boolq.oracle, YesNoOracle) and boolq.judge("yes") and not boolq.judge("no")
    assert boolq.task_type == "optillmbench:boolq"

    assert aqua.prompt.startswith("Choose the correct answer. Provide only the letter choice with no explanation.")
    assert isinstance(aqua.oracle, MultipleChoiceOracle) and aqua.judge("C") and not aqua.judge("A")
    assert aqua.metadata["category"] == "aqua_rat"


def test_rg_spec_with_options_and_config():
    spec = 'rg:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1&operators=["+"]&allow_negation=false&size=8'
    tasks = load_tasks(spec, config='{"allow_parentheses": false}')
    assert len(tasks) == 8
    assert [t.item_id for t in tasks] == [str(i) for i in range(8)]
    for t in tasks:
        assert t.task_type == "rg:basic_arithmetic" and isinstance(t.oracle, ReasoningGymOracle)
        assert "+" in t.query and "-" not in t.query and "(" not in t.query
        assert t.reference["answer"] == t.answer and t.query == t.reference["question"]
        assert t.judge(f"It is {t.answer}.") and not t.judge(f"It is {int(t.answer) + 1}.")
    assert tasks[0].dataset_id == (
        "rg:basic_arithmetic?allow_negation=false&allow_parentheses=false&max_digits=1&max_terms=2"
        '&min_terms=2&operators=["+"]&seed=42&size=8'
    )


def test_rg_is_deterministic_and_seeded():
    first = load_tasks("rg:chain_sum?size=10", seed=1)
    again = load_tasks("rg:chain_sum?size=10", seed=1)
    other = load_tasks("rg:chain_sum?size=10", seed=2)
    assert [(t.item_id, t.query) for t in first] == [(t.item_id, t.query) for t in again]
    assert [t.query for t in first] != [t.query for t in other]
    assert first[0].dataset_id != other[0].dataset_id
    assert len(load_tasks("rg:chain_sum")) == 50
    explicit_seed = load_tasks("rg:chain_sum?size=10&seed=1", seed=99)
    assert [t.query for t in explicit_seed] == [t.query for t in first]


def test_default_dataset():
    tasks = load_tasks(DEFAULT_DATASET)
    assert len(tasks) == 6 and tasks[0].task_type == "rg:chain_sum"
    assert all(len(t.reference["metadata"]["expression"].split()) == 3 for t in tasks)


def test_sample_size_and_max_examples(tmp_path):
    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(30)]
    path = str(write_jsonl(tmp_path / "d.jsonl", rows))
    sample = load_tasks(path, sample_size=10, seed=3)
    assert len(sample) == 10 and len({t.item_id for t in sample}) == 10
    assert all(t.query == f"q{t.item_id}" for t in sample)
    assert [t.item_id for t in load_tasks(path, sample_size=10, seed=3)] == [t.item_id for t in sample]
    assert [t.item_id for t in load_tasks(path, sample_size=10, seed=4)] != [t.item_id for t in sample]
    head = load_tasks(path, sample_size=10, seed=3, max_examples=4)
    assert [t.item_id for t in head] == [t.item_id for t in sample[:4]]
    assert [t.item_id for t in load_tasks(path, max_examples=3)] == ["0", "1", "2"]
    assert len(load_tasks(path, sample_size=100)) == 30
    rg = load_tasks("rg:chain_sum?size=20", sample_size=5, seed=0)
    assert len(rg) == 5 and all(0 <= int(t.item_id) < 20 for t in rg)


def test_missing_field_lists_columns(tmp_path):
    path = str(write_jsonl(tmp_path / "d.jsonl", [{"text": "q", "label": "a"}]))
    with pytest.raises(PTSError, match=r"no query field .*available columns: text, label.*--query-key"):
        load_tasks(path)
    with pytest.raises(PTSError, match=r"no answer field .*available columns: text, label.*--answer-key"):
        load_tasks(path, query_key="text")
    with pytest.raises(PTSError, match=r"query field 'nope' not found .*text, label.*--query-key"):
        load_tasks(path, query_key="nope")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jsonl", "", "is empty"),
        ("empty.json", "[]", "is empty"),
        ("empty.csv", "", "is empty"),
        ("header_only.csv", "question,answer\n", "is empty"),
        ("bad.jsonl", '{"question": "q", "answer": "a"}\n{not json\n', "line 2 is not valid JSON"),
        ("bad.json", "{", "not valid JSON"),
        ("scalar.json", "3", "must hold a JSON list"),
        ("strings.jsonl", '"just a string"\n', "not an object"),
        ("corrupt.parquet", "this is not parquet", "could not read"),
        ("data.txt", "question,answer", "unsupported file extension '.txt'"),
    ],
)
def test_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PTSError, match=message):
        load_tasks(str(path))


@pytest.mark.parametrize(
    "spec, kwargs, message",
    [
        ("does/not/exist.jsonl", {}, "dataset file not found"),
        ("./missing", {}, "dataset file not found"),
        ("not a dataset!", {}, "unknown dataset"),
        ("", {}, "no dataset given"),
        ("rg:no_such_task", {}, "unknown reasoning-gym task 'no_such_task'"),
        ("rg:chain_sun", {}, "did you mean chain_sum"),
        ("rg:", {}, "no reasoning-gym task"),
        ("rg:chain_sum?bogus=1", {}, "has no option 'bogus'; its options are: min_terms"),
        ("rg:chain_sum?min_terms=5&max_terms=2", {}, "invalid options for rg:chain_sum"),
        ("rg:chain_sum?size=0", {}, "size for rg:chain_sum must be a positive integer"),
        ("rg:chain_sum?size", {}, "bad option 'size'"),
        ("rg:chain_sum", {"config": "[1, 2]"}, "must be a JSON object"),
        ("rg:chain_sum", {"config": "{oops"}, "must be a JSON object"),
        ("rg:chain_sum", {"max_examples": 0}, "no examples left"),
        ("rg:chain_sum", {"sample_size": -1}, "sample_size must be a non-negative integer"),
        ("rg:chain_sum", {"oracle": "nope"}, "unknown oracle 'nope'"),
    ],
)
def test_bad_specs(spec, kwargs, message):
    with pytest.raises(PTSError, match=message):
        load_tasks(spec, **kwargs)


def test_hub_name_offline_gives_a_clear_error(tmp_path):
    # The offline switch is read when huggingface_hub is imported, so the check runs in a fresh process.
    code = (
        "from pts.tasks import load_tasks\n"
        "from pts.errors import PTSError\n"
        "try:\n"
        "    load_tasks('openai/gsm8k', config='main', split='train')\n"
        "except PTSError as e:\n"
        "    print('PTSError:', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    out = result.stdout.strip()
    assert out.startswith("PTSError: could not load dataset 'openai/gsm8k' from the Hugging Face Hub: "), result
    assert "\n" not in out


def test_rows_without_a_value_are_skipped(tmp_path, caplog):
    rows = [{"question": "q0", "answer": "1"}, {"question": None, "answer": "2"}, {"question": "q2", "answer": None}]
    tasks = load_tasks(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert [t.item_id for t in tasks] == ["0"]
    assert "skipped 2 row(s)" in caplog.text
    with pytest.raises(PTSError, match="no usable rows"):
        load_tasks(str(write_jsonl(tmp_path / "none.jsonl", rows[1:])))


def test_rg_oracle_needs_rg_dataset(tmp_path):
    with pytest.raises(PTSError, match="use it with an rg:<task> dataset"):
        load_tasks(str(write_jsonl(tmp_path / "d.jsonl", ROWS)), oracle="rg:chain_sum")


def test_csv_with_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text("question,answer\nWhat is 1+1?,2\n", encoding="utf-8-sig")
    (task,) = load_tasks(str(path))
    assert (task.query, task.answer) == ("What is 1+1?", "2")


def test_optillmbench_file_in_named_folder(tmp_path):
    directory = tmp_path / "optillmbench"
    directory.mkdir()
    row = {"id": "boolq_1", "category": "boolq", "question": "Is the sky blue?", "answer": "Yes"}
    (task,) = load_tasks(str(write_jsonl(directory / "train.jsonl", [row])))
    assert task.task_type == "optillmbench:boolq" and task.prompt.startswith("Answer this yes/no question")


def test_rows_sharing_an_id_each_get_their_own_and_a_warning(tmp_path, caplog):
    path = tmp_path / "dup.jsonl"
    write_jsonl(
        path,
        [
            {"id": "x", "question": "1+1?", "answer": "2"},
            {"id": "x", "question": "2+2?", "answer": "4"},
            {"id": "y", "question": "3+3?", "answer": "6"},
        ],
    )
    tasks = load_tasks(str(path))
    assert [t.item_id for t in tasks] == ["x", "x@row1", "y"]
    assert [t.query for t in tasks] == ["1+1?", "2+2?", "3+3?"]
    assert "1 selected row(s)" in caplog.text and "'x@row1'" in caplog.text
    # A row keeps its id whatever is selected, so a resumed run with another --max-examples matches it.
    assert [t.item_id for t in load_tasks(str(path), sample_size=3, seed=5) if t.query == "2+2?"] == ["x@row1"]


def test_empty_and_structured_answers_warn(tmp_path, caplog):
    path = tmp_path / "answers.jsonl"
    write_jsonl(
        path,
        [
            {"question": "a?", "answer": ""},
            {"question": "b?", "answer": "  "},
            {"question": "c?", "answer": ["1", "2"]},
            {"question": "d?", "answer": {"x": 1}},
            {"question": "e?", "answer": ["7"]},
            {"question": "f?", "answer": "8"},
        ],
    )
    tasks = load_tasks(str(path))
    assert [t.query for t in tasks] == ["c?", "d?", "e?", "f?"]
    assert "skipped 2 row(s)" in caplog.text and "empty or missing" in caplog.text
    assert "2 row(s)" in caplog.text and "list or object" in caplog.text
