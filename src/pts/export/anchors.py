"""Thought anchors out of ``pts anchors`` records: the original PTS tool's export, and Thought Anchors' chunks.

- :func:`original_rows`: the rows the original tool's ``export_thought_anchors``
  writes (its fields, in its order), one per anchor, so scripts written for its
  files read ours. pts's interval and verification go in its
  ``verification_score`` (the lower end of the interval of ``|prob_delta|``) and
  ``verification_method`` fields; its attention fields stay null.
- :func:`chunk_rows`: one response's sentences as the ``chunks_labeled.json`` of
  Thought Anchors' analysis (``chunk``, ``chunk_idx``, ``function_tags``,
  ``depends_on``, ``accuracy`` and the importance metrics), which their viewer
  draws as the sentence graph. Their counterfactual accuracy importance is
  different minus kept, so its sign is flipped from pts's ``prob_delta``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pts.errors import PTSError
from pts.formats import thought_anchors
from pts.store import atomic_write, read_jsonl


def read_anchor_rows(rows: Iterable[Mapping[str, Any]], source: str) -> list[Mapping[str, Any]]:
    """The thought-anchor records among ``rows``; PTSError when ``source`` holds none."""
    out = [r for r in rows if thought_anchors.FORMAT.matches(r)]
    if not out:
        raise PTSError(f"{source} holds no thought-anchor records (written by `pts anchors`)")
    return out


def is_anchor(row: Mapping[str, Any], min_delta: float) -> bool:
    """Whether a record is exported as an anchor: pts's own verdict when it has one, else |prob_delta|."""
    if "is_anchor" in row:
        return bool(row["is_anchor"])
    return abs(row.get("prob_delta") or 0.0) >= min_delta


def original_rows(rows: Iterable[Mapping[str, Any]], min_delta: float = 0.2) -> list[dict[str, Any]]:
    """The anchors of ``rows`` as the original tool's export rows (see the module docstring)."""
    out = []
    for r in rows:
        if not is_anchor(r, min_delta):
            continue
        ci = r.get("prob_delta_ci") or []
        delta = r.get("prob_delta") or 0.0
        score = None
        if len(ci) == 2:
            low, high = ci
            score = max(0.0, low) if delta >= 0 else max(0.0, -high)
        alternatives = list(r.get("alternatives_tested") or [])
        out.append(
            {
                "anchor_id": r.get("anchor_id")
                or f"{r.get('dataset_id')}_{r.get('dataset_item_id')}_{r['sentence_id']}",
                "query": r.get("query", ""),
                "sentence": r["sentence"],
                "sentence_id": r["sentence_id"],
                "prefix_context": r.get("prefix_context", ""),
                "sentence_category": r.get("sentence_category") or "unknown",
                "importance_score": r.get("importance_score", abs(delta)),
                "prob_delta": delta,
                "prob_with_sentence": r.get("prob_with_sentence"),
                "prob_without_sentence": r.get("prob_without_sentence"),
                "is_positive": bool(r.get("is_positive", delta > 0)),
                "task_type": r.get("task_type", "generic"),
                "model_id": r.get("model_id", "unknown"),
                "timestamp": r.get("timestamp", ""),
                "reasoning_pattern": r.get("reasoning_pattern", "other"),
                "verification_score": score,
                "verification_method": "pts fresh rollouts" if r.get("verified") else None,
                "arithmetic_errors": [],
                "attention_entropy": None,
                "attention_focus_score": None,
                "alternatives_tested": alternatives,
                "num_alternatives": r.get("num_alternatives", len(alternatives)),
            }
        )
    return out


def chunk_rows(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Every analysed response's sentences as Thought Anchors' ``chunks_labeled.json`` rows, keyed by
    (dataset item, solution index), in sentence order."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(str(r.get("dataset_item_id")), int(r.get("solution_index", 0)))].append(r)
    out = {}
    for key, members in groups.items():
        members = sorted(members, key=lambda r: r["sentence_id"])
        out[key] = [
            {
                "chunk": r["sentence"],
                "chunk_idx": r["sentence_id"],
                "function_tags": [r.get("sentence_category") or "unknown"],
                "depends_on": [str(d) for d in r.get("dependency_sentences") or []],
                "accuracy": r.get("accuracy", 0.0),
                "resampling_importance_accuracy": r.get("resampling_importance_accuracy", 0.0),
                "counterfactual_importance_accuracy": -(r.get("counterfactual_importance_accuracy") or 0.0),
                "counterfactual_importance_kl": r.get("counterfactual_importance_kl") or 0.0,
                "different_trajectories_fraction": r.get("different_trajectories_fraction", 0.0),
                "summary": r["sentence"][:60],
            }
            for r in members
        ]
    return out


def viewer_files(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The files of Thought Anchors' viewer (interp-reasoning/thought-anchors.com, ``src/app/data``) for every
    analysed response: ``<model>/<correct|incorrect>_base_solution/problem_<item>[_<solution>]/`` holding
    ``problem.json``, ``base_solution.json``, ``chunks_labeled.json``, ``summary.json`` and ``step_importance.json``
    (sentence-to-sentence importance is not measured by pts: an empty list). Returns relative path -> JSON value."""
    rows = list(rows)
    chunks = chunk_rows(rows)
    first = {}
    for r in rows:
        first.setdefault((str(r.get("dataset_item_id")), int(r.get("solution_index", 0))), r)
    files: dict[str, Any] = {}
    for key, labeled in chunks.items():
        r = first[key]
        item, solution = key
        last = max(
            (x for x in rows if (str(x.get("dataset_item_id")), int(x.get("solution_index", 0))) == key),
            key=lambda x: x["sentence_id"],
        )
        correct = bool(last.get("successes_with")) and last.get("samples_with") == 1
        model = str(r.get("model_id", "model")).replace("/", "_")
        name = f"problem_{item}" + (f"_{solution}" if solution else "")
        folder = f"{model}/{'correct' if correct else 'incorrect'}_base_solution/{name}"
        importances = [c["counterfactual_importance_accuracy"] for c in labeled]
        top = sorted(labeled, key=lambda c: -abs(c["counterfactual_importance_accuracy"]))[:5]
        files[f"{folder}/problem.json"] = {"problem": r.get("query", ""), "gt_answer": r.get("answer", "")}
        files[f"{folder}/base_solution.json"] = {"prompt": "", "solution": r.get("response", ""), "is_correct": correct}
        files[f"{folder}/chunks_labeled.json"] = labeled
        files[f"{folder}/step_importance.json"] = []
        files[f"{folder}/summary.json"] = {
            "problem_idx": item,
            "num_chunks": len(labeled),
            "avg_importance": sum(importances) / len(importances) if importances else 0.0,
            "max_importance": max(importances, default=0.0),
            "min_importance": min(importances, default=0.0),
            "top_influential_steps": [{"step_idx": c["chunk_idx"], "step_text": c} for c in top],
        }
    return files


def read_anchors(input_path: str) -> list[Mapping[str, Any]]:
    """The thought-anchor records of the JSONL file ``input_path``; PTSError when it is missing or holds none."""
    path = Path(input_path).expanduser()
    if not path.is_file():
        raise PTSError(f"input file not found: {input_path}")
    try:
        rows = read_jsonl(path)
    except UnicodeDecodeError:
        raise PTSError(f"{input_path} is not a UTF-8 text file of JSON lines") from None
    return read_anchor_rows(rows, input_path)


def write_original(rows: Sequence[Mapping[str, Any]], output: str) -> int:
    """A JSONL of the original tool's rows at ``output``, one per anchor of ``rows``; returns how many.
    PTSError, with nothing written, when no record is an anchor."""
    out = original_rows(rows)
    if not out:
        raise PTSError("the records hold no anchor (no sentence kept by verification): nothing to export")
    with atomic_write(output) as f:
        for row in out:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(out)


def check_folder(output: str) -> None:
    """PTSError unless the viewer's folders can be written under ``output`` (a folder, or nothing yet)."""
    root = Path(output).expanduser()
    if root.exists() and not root.is_dir():
        raise PTSError(f"--output-path {output} is a file; the viewer export writes a folder")


def write_viewer(rows: Sequence[Mapping[str, Any]], output: str) -> int:
    """The viewer's folders (:func:`viewer_files`) under ``output``, each file written whole; returns how many
    files."""
    check_folder(output)
    root = Path(output).expanduser()
    files = viewer_files(rows)
    for relative, value in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as f:
            json.dump(value, f, indent=2, ensure_ascii=False)
    return len(files)
