"""DPO on ``pts export --format dpo`` files, with TRL's ``DPOTrainer``.

TRL re-tokenizes text pairs (``prompt``, ``prompt+chosen``, ``prompt+rejected``)
and appends EOS to ``chosen``/``rejected``. For a pivotal pair that changes the
decision being trained: ``" 7"`` vs ``" 8"`` becomes two tokens plus an
end-of-message on SmolLM2. :class:`PreTokenizedDPOTrainer` trains on rows that
already carry ``prompt_ids``/``chosen_ids``/``rejected_ids`` exactly as given
(no re-tokenization, no EOS) and hands text rows to TRL unchanged.
"""

from __future__ import annotations

import logging

from datasets import Dataset, IterableDataset
from trl import DPOConfig, DPOTrainer

from pts.train.data import ID_KEYS

log = logging.getLogger(__name__)


class PreTokenizedDPOTrainer(DPOTrainer):
    """``trl.DPOTrainer`` that keeps pre-tokenized rows as they are.

    A dataset with ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` columns
    skips TRL's prompt extraction, EOS appending and tokenization; only TRL's
    filter for rows whose prompt alone fills ``max_length`` is kept. Any other
    dataset goes through ``DPOTrainer`` unchanged. Loss, reference model (adapter
    disabled under PEFT) and collator are TRL's.
    """

    def _prepare_dataset(
        self, dataset: Dataset | IterableDataset, processing_class, args: DPOConfig, dataset_name: str
    ) -> Dataset | IterableDataset:
        if not set(ID_KEYS) <= set(dataset.column_names or []):
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        elif args.max_length is not None and args.truncation_mode == "keep_start":
            # Same rule as TRL: a prompt that fills max_length leaves no completion token to learn from.
            before = len(dataset) if isinstance(dataset, Dataset) else None
            dataset = dataset.filter(lambda ex: len(ex["prompt_ids"]) < args.max_length)
            if before is not None and len(dataset) < before:
                log.warning(
                    "%d of %d %s rows dropped: their prompt alone has max_length (%d) tokens or more",
                    before - len(dataset),
                    before,
                    dataset_name,
                    args.max_length,
                )
        if isinstance(dataset, Dataset) and len(dataset) == 0:
            raise ValueError(
                f"no {dataset_name} row is left: every prompt has max_length ({args.max_length}) tokens or more"
            )
        return dataset
