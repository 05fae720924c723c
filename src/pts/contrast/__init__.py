"""Contrastive estimation of critical tokens (Lin et al., "Critical Tokens Matter", arXiv 2411.19943).

Three phases, each usable alone:

1. **Trajectories and training sets.** Sample ``num_trajectories`` responses
   per query and judge them with the task's oracle (or read them from a JSONL
   file). Positives are correct trajectories; negatives are incorrect ones whose
   final answer is among the most frequent wrong answers, selected as in the
   authors' released code: wrong answers in decreasing frequency, one
   trajectory each, until their cumulative share of the wrong responses
   reaches ``negative_top_p`` (0.5); after the most frequent one, answers seen
   only once are skipped; responses without an extractable answer, or cut off
   by the token budget (no final answer), are never negatives. Positives: ``positives_per_query`` correct trajectories per
   query (1 as in the authors' code; 0 takes all).
2. **A positive and a negative model**: LoRA adapters fine-tuned with TRL's
   ``SFTTrainer`` on the exact token ids of the trajectories, with the loss on
   the response tokens only (``completion_only_loss``).
3. **Per-token scores**: for each response token ``y_t``,

       s_t = softmax_v((1 + beta) log p_pos(v | x, y_<t) - beta log p_neg(v | x, y_<t))[y_t]

   from one forward pass of each model over the trajectory. A low ``s_t`` on an
   incorrect trajectory marks a token the negative model explains better than
   the positive one: a critical-token candidate. cDPO weights the rejected
   trajectory's tokens by ``1 - s_t`` (``pts train --loss cdpo``). The
   authors' code applies the softmax to ``2 * logits_pos - logits_neg``; that
   is the same number (log-softmax and logits differ by a per-position
   constant, which the softmax removes).

Modules, one per concern: :mod:`~pts.contrast.trajectories` (the sampled or
read trajectories), :mod:`~pts.contrast.select` (the training sets),
:mod:`~pts.contrast.training` (the LoRA fine-tuning), :mod:`~pts.contrast.score`
(the per-token scores). :mod:`pts.jobs.contrast` runs the phases (``pts contrast``).
Nothing here imports torch at import time.
"""
