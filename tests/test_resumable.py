"""pts.resumable.drive: a new per-query job plugs in with a Work and a Writer and gets locking, resuming,
settings checks and the too-long warning without writing any of them."""

from dataclasses import dataclass, field

import pytest

from pts.engines.fake import PassFailOracle
from pts.errors import PTSError
from pts.options import RayOptions, ResumableOutputOptions
from pts.resumable import Writer, drive
from pts.store import OutputLock, progress_path, read_jsonl
from pts.tasks.task import Task
from pts.work import Work


class Model:
    model_id = "toy"
    context_length = 20


@dataclass
class Outcome:
    item_id: str
    status: str
    records: list = field(default_factory=list)


def judge_length(model, task):
    """One unit: a record per word of the query, or too_long for a query beyond the toy context."""
    if len(task.query) > model.context_length:
        return Outcome(task.item_id, "too_long")
    return Outcome(task.item_id, "done", [{"id": f"{task.item_id}:{w}", "word": w} for w in task.query.split()])


WORK = Work(Model, lambda engine: engine, judge_length, key=lambda t: t.item_id)


class WordWriter(Writer):
    def __init__(self):
        self.written = []

    def commit(self, store, task, result):
        rows = [{**r, "dataset_item_id": task.item_id, "dataset_id": "toy", "model_id": "toy"} for r in result.records]
        store.write_item(task.item_id, rows, {"status": result.status})
        self.written.append(task.item_id)


def tasks(*queries):
    return [Task(q, "", str(i), "toy", "toy", PassFailOracle()) for i, q in enumerate(queries)]


def go(out, writer, items, settings=None, **output):
    return drive(
        WORK,
        items,
        writer,
        output=ResumableOutputOptions(output_path=str(out), progress=False, **output),
        ray=RayOptions(),
        settings=settings or {"words": 1},
        max_new_tokens=7,
    )


def test_a_new_job_plugs_in_with_a_work_and_a_writer(tmp_path, caplog):
    out = tmp_path / "words.jsonl"
    items = tasks("a b", "c", "this query is far too long for the toy")
    first = WordWriter()
    done = go(out, first, items)
    assert first.written == ["0", "1", "2"] and done.resumed == 0 and done.too_long == ["2"]
    assert "item 2: its prompt and --max-new-tokens 7 do not fit the model's context of 20" in caplog.text
    assert sorted(r["word"] for r in read_jsonl(out)) == ["a", "b", "c"]
    again = WordWriter()
    assert go(out, again, items).resumed == 3 and again.written == []
    with pytest.raises(PTSError, match=r"different settings \(words: 1 then, 2 now\)"):
        go(out, WordWriter(), items, settings={"words": 2})
    with OutputLock(out), pytest.raises(PTSError, match="being written by another pts process"):
        go(out, WordWriter(), items, overwrite=True)
    assert go(out, WordWriter(), items, overwrite=True).resumed == 0
    assert len([r for r in read_jsonl(progress_path(out)) if r["kind"] == "item"]) == 3


def test_every_check_comes_before_any_file_or_model(tmp_path):
    loaded = []
    work = Work(lambda: loaded.append(1) or Model(), lambda e: e, judge_length)
    out = tmp_path / "words.jsonl"
    for items, message in ((tasks(), "no rows"), (tasks("a", "b") + tasks("c"), "share the item id '0'")):
        with pytest.raises(PTSError, match=message):
            drive(
                work,
                items,
                WordWriter(),
                output=ResumableOutputOptions(output_path=str(out), progress=False),
                ray=RayOptions(),
                settings={},
            )
    assert not loaded and not any(tmp_path.iterdir())


def test_an_input_refused_once_the_model_is_known_leaves_no_file(tmp_path):
    class Picky(WordWriter):
        def start(self, pool):
            raise PTSError(f"{pool.model_id} cannot take these inputs")

    with pytest.raises(PTSError, match="toy cannot take these inputs"):
        go(tmp_path / "words.jsonl", Picky(), tasks("a"))
    assert not any(tmp_path.iterdir())
