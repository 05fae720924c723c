"""DPO pairs: what ``pts export --format dpo`` writes (plain text or ``--chat`` messages), and the original tool's.

A pair is TRL's preference row: ``prompt``, ``chosen``, ``rejected``. pts's
pairs add the exact token ids (``prompt_ids``, ``chosen_ids``,
``rejected_ids``) and a ``metadata`` object saying where the pair came from
(``metadata.pivot_id``) and what was measured; the original PTS tool's pairs
have neither. In the conversational form (``--chat``) the three fields are
message lists. The pairs themselves are built in :mod:`pts.export.dpo`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pts.aliases import hub_model_id
from pts.errors import PTSError
from pts.formats import rows
from pts.formats.base import PHI4_LINK, PTS_LINK, ExportRequest, FileSummary, Format, Written, by_model, load_snippet

# What each field of a DPO pair means (the plain form; CHAT_FIELDS replaces some for --chat).
FIELDS = {
    "prompt": "Exact decoded context: the prompt (chat template applied) and the response up to the decision.",
    "chosen": "The continuation that measured better: a single token (a run of tokens, for a pivotal span).",
    "rejected": "The continuation that measured worse: a single token (a run of the same length, for a span).",
    "prompt_ids": "Token ids of `prompt`, exactly as the model saw them (TRL's column name).",
    "chosen_ids": "The chosen token's id (a span's ids), alone: no end-of-sequence token after it.",
    "rejected_ids": "The rejected token's id (a span's ids), alone: no end-of-sequence token after it.",
    "metadata": "Where the pair came from and what was measured.",
    "metadata.original_query": "The task's question, before the chat template.",
    "metadata.prob_chosen": "Estimated p(success) after the chosen token.",
    "metadata.prob_rejected": "Estimated p(success) after the rejected token.",
    "metadata.prob_delta": "The pivot's own `prob_after - prob_before` (positive: the pivot is `chosen`, "
    "negative: it is `rejected`).",
    "metadata.prob_before": "Estimated p(success) of the context before either token.",
    "metadata.samples": "Rollouts behind `prob_chosen` and `prob_rejected` (keys `chosen`, `rejected`).",
    "metadata.is_positive": "Whether the pivot raised p(success) (then it is `chosen`).",
    "metadata.task_type": "Kind of task.",
    "metadata.model_id": "Model whose rollouts were measured.",
    "metadata.dataset_id": "Dataset the question came from.",
    "metadata.dataset_item_id": "Id of the question within that dataset.",
    "metadata.counterpart_verified": "True when the gap between `prob_chosen` and `prob_rejected` is established: "
    "the interval of the difference at `metadata.gap_confidence` excludes zero.",
    "metadata.gap_interval": "Interval of `prob_chosen - prob_rejected` (Newcombe's, from Wilson intervals).",
    "metadata.gap_confidence": "Confidence level of `gap_interval`.",
    "metadata.counterpart_source": "How the counterpart was measured: `first_tokens` (the search's own rollouts "
    "from this context, grouped by first token) or `estimated` (the model's top "
    "next tokens, each sampled again and judged by the oracle).",
    "metadata.pivot_id": "`id` of the pivotal-token record the pair was built from.",
    "metadata.pivot_token_id": "Token id of the pivotal token.",
    "metadata.chosen_token_id": "Token id of `chosen` (its first, for a span pair).",
    "metadata.rejected_token_id": "Token id of `rejected` (its first, for a span pair).",
    "metadata.span_token_ids": "For a pair from a pivotal span: the span's token ids (chosen or rejected, by its "
    "sign; the other side is a run of the same length that rollouts from the context took); null for a token pair.",
    "metadata.prompt_token_ids": "Token ids of the context, exactly as the model saw them (for trainers that "
    "take pre-tokenized pairs).",
    "metadata.retokenized": "True when the token ids were not recorded (a file of the original tool) and come "
    "from tokenizing the text again.",
    "metadata.trl_tokens_match": "Whether TRL's own tokenization of this row reproduces the measured context ids "
    "and single tokens (the EOS it appends aside).",
}

# The fields of the conversational form (`pts export --format dpo --chat`) that differ.
CHAT_FIELDS = {
    "prompt": "The messages the chat template rendered before the response (user, and system when there was one).",
    "chosen": "One assistant message: the response so far followed by the token that measured better.",
    "rejected": "One assistant message: the response so far followed by the token that measured worse.",
    "prompt.role": "Message role.",
    "prompt.content": "Message text.",
    "chosen.role": "`assistant`.",
    "chosen.content": "The response so far and the chosen token.",
    "rejected.role": "`assistant`.",
    "rejected.content": "The response so far and the rejected token.",
}

# TRL 1.16's DPOTrainer always tokenizes a dataset's text again and appends the end-of-sequence token to chosen and
# rejected; it has no option to keep given ids. This subclass skips that step, so the measured ids are trained as
# they are. Cards and docs/exporting.md show it; tests/test_export.py trains with this very text.
TRL_IDS_TRAINER = '''class TokenIdsDPOTrainer(DPOTrainer):
    """DPO on the rows' prompt_ids/chosen_ids/rejected_ids as they are: no re-tokenization, no appended EOS."""

    def _prepare_dataset(self, dataset, *args, **kwargs):
        return dataset.select_columns(["prompt_ids", "chosen_ids", "rejected_ids"])'''


class DPOPairs(Format):
    name = "dpo"
    view_list = "pairs"
    default_output = "dpo_dataset.jsonl"
    settings_type = "pts.export.dpo:DPOSettings"
    what = "DPO pairs"
    shapes = {"dpo": "DPO pairs (pts export --format dpo)", "original_dpo": "DPO pairs (original PTS tool)"}
    keys = ("prompt", "chosen", "rejected")
    fields = FIELDS
    title = "Pivotal-token DPO pairs"
    tags = ("dpo", "preference", "trl", "reasoning")
    noun = "preference pairs"
    counted = (
        ("verified", "Counterparts verified with the oracle"),
        ("trl_match", "Pairs TRL tokenizes exactly as measured"),
    )
    sign_label = "Pairs from positive / negative pivots"

    def shape(self, row: dict[str, Any]) -> str:
        metadata = row.get("metadata")
        pts_made = isinstance(metadata, dict) and ("pivot_id" in metadata or "prompt_token_ids" in metadata)
        return "dpo" if pts_made else "original_dpo"

    def summarise(self, s: FileSummary, rows: list[dict[str, Any]], meta: list[dict[str, Any]]) -> None:
        s.conversational = isinstance(rows[0].get("prompt"), list)
        s.tokenized = all(all(k in r for k in ("prompt_ids", "chosen_ids", "rejected_ids")) for r in rows)
        verified = [m.get("counterpart_verified") for m in meta if "counterpart_verified" in m]
        if verified:
            s.extra["verified"] = sum(bool(v) for v in verified)
        match = [m.get("trl_tokens_match") for m in meta if "trl_tokens_match" in m]
        if match:
            s.extra["trl_match"] = sum(bool(v) for v in match)

    def describe(self, s: FileSummary, name: str) -> str | None:
        if s.conversational and name in CHAT_FIELDS:
            return CHAT_FIELDS[name]
        return super().describe(s, name)

    def description(self, s: FileSummary, model: str | None) -> str:
        by = by_model(model)
        form = (
            "TRL's conversational preference form (`prompt`, `chosen`, `rejected` as message lists)"
            if s.conversational
            else "TRL's standard preference form (`prompt`, `chosen`, `rejected` strings)"
        )
        return (
            f"Token-level preference pairs{by} built by {PTS_LINK} from pivotal tokens (the {PHI4_LINK}), in "
            f"{form}. `prompt` is the exact context before a pivotal decision; `chosen` and `rejected` are single "
            f"tokens. For a positive pivot the pivot is `chosen` and `rejected` is an alternative next token "
            f"measured to succeed less often; for a negative pivot the pivot is `rejected` and `chosen` an "
            f"alternative measured to succeed more often. Counterparts come from measured rollouts, never "
            f"from an assumed oracle; `metadata.counterpart_verified` says whether the gap is established "
            f"at `metadata.gap_confidence`."
            + (
                " `prompt_ids`, `chosen_ids` and `rejected_ids` are the measured token ids: train on them "
                "(see Usage), not on the text."
                if s.tokenized
                else ""
            )
        )

    def usage(self, s: FileSummary, repo_id: str, model: str | None, filename: str) -> list[str]:
        load = [
            *load_snippet(repo_id),
            "row = dataset[0]",
            'print(repr(row["prompt"][-80:]) if isinstance(row["prompt"], str) else row["prompt"][-1])',
            'print("chosen:", repr(row["chosen"]), "rejected:", repr(row["rejected"]))',
            "```",
        ]
        trainer = "TokenIdsDPOTrainer" if s.tokenized else "DPOTrainer"
        config = 'DPOConfig(output_dir="dpo-pivotal-tokens"' + (", max_length=None" if s.tokenized else "") + ")"
        train = [
            "```python",
            "from datasets import load_dataset",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "from trl import DPOConfig, DPOTrainer",
            "",
        ]
        if s.tokenized:
            train += [*TRL_IDS_TRAINER.splitlines(), "", ""]
        train += [
            f'model_id = "{hub_model_id(model) or "MODEL_ID"}"',
            f'dataset = load_dataset("{repo_id}", split="train")',
            "model = AutoModelForCausalLM.from_pretrained(model_id)",
            "tokenizer = AutoTokenizer.from_pretrained(model_id)",
            f"trainer = {trainer}(",
            "    model=model,",
            f"    args={config},  # add use_cpu=True on a machine without a GPU",
            "    train_dataset=dataset,",
            "    processing_class=tokenizer,",
            ")",
            "trainer.train()",
            "```",
            "",
        ]
        if s.tokenized:
            train.append(
                "Stock `DPOTrainer` (TRL 1.16) would tokenize `prompt + chosen` and `prompt + rejected` again "
                "and append the end-of-sequence token to both: right after a pivot that token carries most "
                "of each completion's log-probability (74% on average for SmolLM2-135M, measured in float32), so "
                "the pair would mostly be about stopping right after the token, not about which token. "
                "`TokenIdsDPOTrainer` trains on the measured ids, one token each. `max_length=None`: "
                "truncation could cut the pivot token off a long context."
            )
        else:
            train.append(
                "TRL tokenizes the completions again and closes each with an end-of-sequence or end-of-turn "
                "token, which is trained too; the exact token ids are in `metadata` where the file has them."
            )
        return ["### Load", ""] + load + ["", "### Train with TRL", ""] + train

    def view_row(self, record: Mapping[str, Any], where: str, query: Callable[[Any], int]) -> dict[str, Any]:
        """The page's row for one DPO pair, plain or conversational, pts's or the original tool's."""
        metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        prompt, chosen, rejected = (rows.text(record[k], where, k) for k in ("prompt", "chosen", "rejected"))
        delta = rows.number(metadata.get("prob_delta"))
        verified = metadata.get("counterpart_verified")
        samples = metadata.get("samples") if isinstance(metadata.get("samples"), dict) else {}
        n_chosen, n_rejected = rows.int_or_none(samples.get("chosen")), rows.int_or_none(samples.get("rejected"))
        return {
            "q": query(metadata.get("original_query", "")),
            "tail": prompt[-rows.CONTEXT_TAIL :],
            "chosen": chosen,
            "rejected": rejected,
            "p_chosen": rows.number(metadata.get("prob_chosen")),
            "p_rejected": rows.number(metadata.get("prob_rejected")),
            "n_chosen": n_chosen,
            "n_rejected": n_rejected,
            "counterpart": counterpart_status(metadata, n_chosen, n_rejected),
            "gap": rows.interval(metadata.get("gap_interval")),
            "gap_confidence": rows.number(metadata.get("gap_confidence")),
            "delta": delta,
            "positive": metadata.get("is_positive", None if delta is None else delta > 0),
            "task": str(metadata.get("task_type") or ""),
            "verified": verified if isinstance(verified, bool) else None,
            "source": metadata.get("counterpart_source"),
        }

    def write(self, request: ExportRequest) -> Written:
        """One DPO pair per pivot with a measured counterpart (:mod:`pts.export.dpo`); with
        ``find_rejected_tokens``, counterparts still missing are measured with the dataset's oracle."""
        from pts.export.dpo import CounterpartFinder, build_pairs, match_tasks, write_pairs
        from pts.export.records import attach_token_ids, warn_model

        pivots, settings = request.pivots, request.settings
        finder, by_pivot = None, None
        if settings.find_rejected_tokens:
            # The oracle first: refuse before loading a model when no dataset can judge the candidates.
            by_pivot = match_tasks(pivots, request.load_tasks(pivots))
            if not by_pivot:
                raise PTSError(
                    "--find-rejected-tokens: no record matches an item of the dataset (by dataset id and item "
                    "id, or by query); pass the --dataset the records were searched on"
                )
            engine = request.load_engine(pivots)
            tokenizer = engine.tokenizer
            warn_model(pivots, engine.model_id)
            finder = CounterpartFinder(engine, settings)
        else:
            tokenizer = request.load_tokenizer(pivots)
        redone = attach_token_ids(pivots, tokenizer)
        pairs, report = build_pairs(pivots, tokenizer, settings, finder=finder, tasks=by_pivot)
        if redone:
            report.notes.append(
                f"{redone} contexts had no usable token ids and were tokenized again (metadata.retokenized)"
            )
        if not pairs:
            hint = "" if settings.find_rejected_tokens else "; --find-rejected-tokens --dataset DATASET measures more"
            raise PTSError(f"no DPO pairs from {report.pivots} pivotal tokens ({report.skipped_text()}){hint}")
        write_pairs(pairs, request.output)
        return Written(len(pairs), report.format())


def counterpart_status(metadata: dict[str, Any], n_chosen: int | None, n_rejected: int | None) -> str:
    """``"established"`` (both tokens measured and the gap's interval lies above zero), ``"not established"``
    (both measured, the interval reaches zero) or ``"not measured"`` (a side has no rollouts, as in the
    original tool's pairs, whose counterpart was not sampled)."""
    if not n_chosen or not n_rejected:
        return "not measured"
    return "established" if metadata.get("counterpart_verified") is True else "not established"


FORMAT = DPOPairs()
