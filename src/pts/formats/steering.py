"""Steering vectors: what ``pts export --format steering`` writes, in the fields optillm's AutoThink reads.

One line per pivot context: the context and its pivots, the residual-stream
vector to add (``steering_vector``, pointing toward success), the cluster it
belongs to and the reasoning pattern named after it. Recognised by
``steering_vector``; the original PTS tool's steering files have it too (with
the raw activation as the vector). The vectors are computed in
:mod:`pts.export.steering`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pts.aliases import hub_model_id
from pts.errors import PTSError
from pts.formats.base import (
    OPTILLM_URL,
    PHI4_LINK,
    PTS_LINK,
    ExportRequest,
    FileSummary,
    Format,
    Written,
    by_model,
    load_snippet,
)

# What each field of a steering line means.
FIELDS = {
    "query": "The task's question, before the chat template.",
    "pivot_context": "Exact decoded context before the pivot token; optillm matches the end of the generated "
    "text against it to decide when to steer.",
    "pivot_token": "The pivotal token, decoded.",
    "pivot_token_id": "Its token id.",
    "prob_before": "Estimated p(success) before the token.",
    "prob_after": "Estimated p(success) after the token.",
    "prob_delta": "`prob_after - prob_before`.",
    "is_positive": "True when the line's pivots raise p(success) (their summed `prob_delta` is positive). optillm "
    "ignores it: `steering_vector` already points toward success.",
    "adds_toward_success": "Always true: adding `steering_vector` (and `cluster_vector`) pushes toward success, "
    "as optillm does with every vector; never subtract it.",
    "direction_method": "`decision_gradient`: `steering_vector` is the gradient of the line's `objective` with "
    "respect to the residual stream at `steering_layer`, at the position that predicts the pivot, scaled to "
    "length 1.",
    "objective": "What the vector raises at its context: `logit_difference` (log p(success_token) - "
    "log p(failure_token)), `success_logprob` or `minus_failure_logprob` when only one side was measured.",
    "success_token_id": "The token at this context after which more rollouts succeeded (the pivot when positive, "
    "else a measured counterpart from the record's first tokens); null when none was measured.",
    "success_token": "It, decoded.",
    "failure_token_id": "The token after which fewer rollouts succeeded (the pivot when negative, else a measured "
    "counterpart); null when none was measured.",
    "failure_token": "It, decoded.",
    "gain_per_unit_norm": "Norm of the gradient: to first order, how much the objective (in nats) rises per unit "
    "of vector added (optillm adds 0.1 to 3 units).",
    "residual_norm": "Norm of the residual stream at `steering_layer` at that position, for scale.",
    "layer_gains": "Median `gain_per_unit_norm` over the export's lines at every layer measured (keys are layer "
    "numbers as text); `steering_layer` is the largest unless `--select-layer` chose it.",
    "activation_dtype": "Dtype of the forward and backward passes the vector was computed in.",
    "pivots": "Every pivot at this context (lines merge pivots that share a context).",
    "pivots.pivot_id": "`id` of the pivotal-token record.",
    "pivots.pivot_token": "The pivot token, decoded.",
    "pivots.pivot_token_id": "Its token id.",
    "pivots.prob_after": "Estimated p(success) after it.",
    "pivots.prob_delta": "Its change of p(success).",
    "pivots.is_positive": "Whether it raises p(success).",
    "model_id": "Model the activations were read from.",
    "task_type": "Kind of task.",
    "dataset_id": "Dataset the question came from.",
    "dataset_item_id": "Id of the question within that dataset.",
    "steering_vector": "The vector optillm adds (it normalises it, then adds strength x it at `target_layer`): "
    "the unit direction that moves this context's decision toward its success-side token (`direction_method`).",
    "activation": "The residual-stream activation at `steering_layer` at that position.",
    "activation_position": "Index, in the context's token ids, of the token whose activation was read (the "
    "last one, which predicts the pivot token).",
    "cluster_id": "Cluster of the vector (k-means over the steering vectors after PCA).",
    "reasoning_pattern": "Label of the cluster in optillm's vocabulary (depth_and_thoroughness, "
    "numerical_accuracy, self_correction, exploration, organization, or unknown): given only when at least half "
    "the cluster's contexts use the pattern's cue words and that share exceeds the other clusters' by 0.5 or "
    "more; otherwise `unknown`. optillm picks its strength by it (0.4.0: `unknown` 1.0).",
    "cluster_vector": "Mean steering vector of the cluster.",
    "steering_layer": "Decoder layer (0-based, the output of `model.model.layers[L]`) the vectors were read at. "
    "optillm ignores it and hooks its `target_layer` (default 19): set that to this number.",
    "retokenized": "True when the context's token ids were not recorded (a file of the original tool) and come "
    "from tokenizing the text again.",
    "pivot_id": "`id` of the pivotal-token record the vector was read for.",
    "id": "Stable id of the record.",
    "kind": "Record kind.",
    "schema_version": "Version of the pts record schema.",
}

# How the original tool's `steering_vector` reads (its files have no separate `activation`).
ORIGINAL_STEERING_VECTOR = (
    "Activation vector at `steering_layer` for the pivot, as the tool that wrote the file "
    "computed it (the original PTS tool stored the raw residual-stream activation); optillm "
    "normalises it and adds it."
)

# The steering file's name inside its folder, and the files datasets.load_dataset(FOLDER) reads as data (and
# fails on when their columns differ from the steering file's).
STEERING_FILE = "steering_vectors.jsonl"
DATA_SUFFIXES = frozenset({".json", ".jsonl", ".csv", ".tsv", ".parquet", ".arrow", ".txt"})


class SteeringVectors(Format):
    name = "steering"
    # A folder of its own: optillm loads every data file of the folder it is given (datasets.load_dataset).
    default_output = "steering_vectors/"
    makes_folder = True
    settings_type = "pts.export.steering:SteeringSettings"
    aliases = ("steering-vectors", "steering_vectors")
    what = "steering vectors"
    shapes = {"steering": "steering vectors (pts export --format steering)"}
    keys = ("steering_vector",)
    fields = FIELDS
    title = "Pivotal-token steering vectors"
    tags = ("steering-vectors", "activation-steering", "optillm", "reasoning", "interpretability")
    noun = "steering vectors"

    def summarise(self, s: FileSummary, rows: list[dict[str, Any]], meta: list[dict[str, Any]]) -> None:
        dims = Counter(len(r["steering_vector"]) for r in rows if isinstance(r.get("steering_vector"), list))
        if dims:
            s.extra["dim"] = dims.most_common(1)[0][0]
        layers = Counter(r["steering_layer"] for r in rows if isinstance(r.get("steering_layer"), int))
        if layers:
            s.extra["layers"] = sorted(layers)
            s.extra["layer"] = layers.most_common(1)[0][0]
        clusters = {r["cluster_id"] for r in rows if r.get("cluster_id") is not None}
        if clusters:
            s.extra["clusters"] = len(clusters)
        patterns = Counter(str(r["reasoning_pattern"]) for r in rows if r.get("reasoning_pattern"))
        if patterns:
            s.extra["patterns"] = patterns

    def describe(self, s: FileSummary, name: str) -> str | None:
        if name == "steering_vector" and "activation" not in s.fields:
            return ORIGINAL_STEERING_VECTOR
        return super().describe(s, name)

    def description(self, s: FileSummary, model: str | None) -> str:
        by = by_model(model)
        return (
            f"Steering vectors{by} built by {PTS_LINK} from pivotal tokens (the {PHI4_LINK}): for each pivot "
            f"context, the unit direction in the residual stream that moves the model from the failure-side token "
            f"toward the success-side token there (the gradient of their log-probability difference), clustered. "
            f"The fields are the "
            f"ones [optillm]({OPTILLM_URL})'s AutoThink reads: it adds a vector at its "
            f"`target_layer` when the generated tokens end like the vector's `pivot_context`. Every vector "
            f"already points toward success (`adds_toward_success`), one line per context."
        )

    def extra_counts(self, s: FileSummary) -> list[tuple[str, str]]:
        rows = []
        if "dim" in s.extra:
            rows.append(("Vector size", str(s.extra["dim"])))
        if "layers" in s.extra:
            rows.append(("Steering layer(s)", ", ".join(map(str, s.extra["layers"]))))
        if "clusters" in s.extra:
            rows.append(("Clusters", str(s.extra["clusters"])))
        if "patterns" in s.extra:
            rows.append(("Reasoning patterns", ", ".join(f"{k} ({v})" for k, v in s.extra["patterns"].most_common())))
        return rows

    def usage(self, s: FileSummary, repo_id: str, model: str | None, filename: str) -> list[str]:
        layer = s.extra.get("layer", "STEERING_LAYER")
        load = [
            *load_snippet(repo_id),
            'print(dataset[0]["reasoning_pattern"], len(dataset[0]["steering_vector"]))',
            "```",
        ]
        optillm = [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "from optillm.autothink import autothink_decode",
            "",
            f'model_id = "{hub_model_id(model) or "MODEL_ID"}"',
            "model = AutoModelForCausalLM.from_pretrained(model_id)",
            "tokenizer = AutoTokenizer.from_pretrained(model_id)",
            'messages = [{"role": "user", "content": "What is 17 * 23? Think step by step."}]',
            "response = autothink_decode(model, tokenizer, messages, {",
            f'    "steering_dataset": "{repo_id}",  # or a local folder holding only the JSONL file',
            f'    "target_layer": {layer},  # the vectors\' steering_layer: optillm ignores that field',
            "})",
            "print(response)",
            "```",
        ]
        return (
            ["### Load", ""]
            + load
            + ["", "### Steer generation with optillm AutoThink", ""]
            + optillm
            + [
                "",
                "optillm (0.4.0) reads the vectors with `datasets.load_dataset(steering_dataset)` and adds "
                "each one (it ignores `is_positive`; these vectors already point toward success) at "
                "`target_layer`, which must be the layer the vectors were read at (`steering_layer`). Put the "
                "file in a folder of its own: optillm loads every data file of the folder, and with another one "
                "there it loads no vector.",
                "",
                "The vectors belong to the model they were computed on, so the example uses that model. AutoThink "
                "brackets its reasoning with `<think>` and `</think>`; a model whose tokenizer has no such tokens "
                "(SmolLM2, Gemma 3 270M) reads them as plain text. For a thinking model (for example "
                "`Qwen/Qwen3-0.6B`), export vectors from its own pivots: `pts run --model Qwen/Qwen3-0.6B`, then "
                "`pts export --format steering`.",
            ]
        )

    def output_file(self, output: str, input_path: str) -> str:
        """``output`` itself when it names a ``.jsonl`` file, else ``output/steering_vectors.jsonl``; PTSError
        when the folder holds another data file (optillm loads the whole folder with ``datasets.load_dataset``,
        which then fails, and AutoThink runs with no vector) or the input, or its parent does not exist."""
        path = Path(output)
        if path.suffix not in (".jsonl", ".json"):
            path = path / STEERING_FILE
        folder = path.parent
        others = (
            sorted(
                f.name
                for f in folder.iterdir()
                if f.is_file()
                and f.suffix.lower() in DATA_SUFFIXES
                and f.name != path.name
                and not f.name.startswith(".")
            )
            if folder.is_dir()
            else []
        )
        if others:
            raise PTSError(
                f"{folder} already holds {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}: optillm loads "
                f"every data file of the folder it is given, and with those it loads no vector; write the steering "
                f"file into a folder of its own (--output-path steering/)"
            )
        if str(folder) not in ("", ".") and Path(input_path).resolve().parent == folder.resolve():
            raise PTSError(f"{folder} holds the input {input_path}: write the steering file into a folder of its own")
        if not folder.exists() and not (folder.parent if str(folder.parent) else Path(".")).is_dir():
            raise PTSError(f"cannot write {path}: directory {folder.parent} does not exist")
        return str(path)

    def write(self, request: ExportRequest) -> Written:
        """One steering line per context (see :mod:`pts.export.steering`): the decision gradient at the layer
        where it moves the pivot decision most per unit of added norm, and the optillm setting it needs."""
        import numpy as np

        from pts.export.layer_inputs import layer_inputs
        from pts.export.steering import context_decision, merge_contexts, steering_records
        from pts.steering.directions import choose_layer, decision_gradients, layer_gains
        from pts.store import write_jsonl

        inputs = layer_inputs(request, control_vector=False)
        pivots, loaded, settings = inputs.pivots, inputs.loaded, request.settings
        contexts, skipped = merge_contexts(pivots, loaded.tokenizer)
        if not contexts:
            raise PTSError(
                f"no steering vector to write: of {len(pivots)} pivots, {skipped['prompt_only']} have a "
                f"context that is only the prompt and {skipped['cancelled']} cancel out at a shared context"
            )
        decisions = [context_decision(c) for c in contexts]
        grads, residuals = decision_gradients(
            loaded.model,
            [c.lead.context_ids for c in contexts],
            decisions,
            inputs.layers,
            batch_size=settings.batch_size,
        )
        gains = layer_gains(grads)
        select = inputs.select if inputs.select is not None else choose_layer(grads)
        dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
        records = steering_records(
            contexts,
            loaded.tokenizer,
            decisions,
            grads[select],
            residuals[select],
            select,
            settings,
            dtype=dtype,
            gains=gains,
        )
        Path(request.output).parent.mkdir(exist_ok=True)
        write_jsonl(request.output, records)
        patterns = sorted({r["reasoning_pattern"] for r in records})
        both = sum(d.objective == "logit_difference" for d in decisions)
        ratio = np.median([np.linalg.norm(g) for g in grads[select]])
        how = "--select-layer" if inputs.select is not None else "largest median gain"
        lines = [
            f"{len(pivots)} pivots -> {len(records)} contexts; left out: {skipped['prompt_only']} whose context is "
            f"only the prompt, {skipped['cancelled']} that cancel at a shared context",
            f"{both} of {len(records)} lines steer between a measured success-side and failure-side token; the rest "
            f"raise or lower the pivot alone",
            f"layer {select} ({how}: {ratio:.3g} nats of log-odds per unit of added norm), activations in {dtype}, "
            f"{len({r['cluster_id'] for r in records})} clusters, patterns: {', '.join(patterns)}",
            f"optillm: set target_layer={select} (AutoThink's config; its default 19 hooks another layer) and load "
            f"the folder {Path(request.output).parent}/ (datasets.load_dataset(FOLDER): it must hold no other data "
            f"file)",
            inputs.note,
        ]
        return Written(len(records), "\n".join(filter(None, lines)))


FORMAT = SteeringVectors()
