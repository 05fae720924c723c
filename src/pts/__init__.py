"""Pivotal Token Search: find the tokens in a model's own reasoning where success is decided.

from pts import RunConfig, run
summary = run(RunConfig(dataset="rg:chain_sum", max_examples=5))
"""

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams
from pts.errors import PTSError
from pts.jobs.run import RunConfig, RunSummary, run
from pts.records import PivotalToken
from pts.search.pivotal import find_pivots, subdivide
from pts.search.searcher import PivotalTokenSearcher, SearchSettings
from pts.tasks.task import Oracle, Task

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "Oracle",
    "PTSError",
    "PivotalToken",
    "PivotalTokenSearcher",
    "Rollout",
    "RolloutRequest",
    "RunConfig",
    "RunSummary",
    "SamplingParams",
    "SearchSettings",
    "Task",
    "find_pivots",
    "run",
    "subdivide",
]
