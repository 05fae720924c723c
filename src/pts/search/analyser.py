"""What the per-query analyses of one run share (:class:`Analyser`): ``pts critical``'s
:class:`~pts.search.critical.query.QueryAnalyser` and ``pts anchors``'
:class:`~pts.search.anchors.query.AnchorAnalyser` are both one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pts.engines.base import SamplingParams
from pts.options import PromptOptions, SamplingOptions
from pts.search.searcher import build_prompt_ids, opens_think_block


@dataclass
class Outcome:
    """What analysing one query gave, whatever the analysis: ``status`` says how it went (the driver,
    :func:`pts.resumable.drive`, reads it and ``item_id``), ``p_initial`` is the query's estimated p(success),
    ``records`` what is written, ``rollouts`` and ``rollout_tokens`` what it cost."""

    item_id: str
    status: str
    p_initial: float | None = None
    records: list[Any] = field(default_factory=list)
    rollouts: int = 0
    rollout_tokens: int = 0


@dataclass(eq=False)
class Analyser:
    """The ``engine`` (and its tokenizer ``tok``), how the analysis measures (``settings``: the algorithm's
    own), the command's ``sampling`` options (``params``: the engine's sampling parameters of them) and its
    ``prompt_options``; :meth:`prompt` builds a task's prompt. A subclass adds its own fields after these."""

    engine: Any
    settings: Any
    sampling: SamplingOptions
    prompt_options: PromptOptions

    def __post_init__(self) -> None:
        s = self.sampling
        self.tok = self.engine.tokenizer
        self.params = SamplingParams(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p)

    def prompt(self, task: Any) -> tuple[list[int], str]:
        """The exact prompt ids of ``task`` and the judge prefix (``<think>`` when the prompt opened one)."""
        c = self.prompt_options
        ids = build_prompt_ids(self.tok, task.prompt, c.system_prompt, c.chat_template, task.raw_prompt)
        judge_prefix = "<think>" if opens_think_block(self.tok.decode(ids, skip_special_tokens=False)) else ""
        return ids, judge_prefix
