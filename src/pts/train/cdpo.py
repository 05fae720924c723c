"""cDPO: token-weighted DPO of "Critical Tokens Matter" (Lin et al., arXiv 2411.19943), on TRL.

The loss of one pair, the paper's formula as pts issue 5 states it::

    loss = -log sigmoid(gamma * (sum_t r^w_t - sum_t (1 - s_t) * r^l_t))

with ``r_t = log pi_theta(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t)`` per token
of the chosen (``w``) and rejected (``l``) response, and ``s_t`` the
contrastive-estimation score of rejected token ``t``: a token that the
contrastive estimate finds likely under the positive model (``s_t`` near 1)
is left alone, a critical token (``s_t`` near 0) is pushed down at full
weight. Chosen tokens are unweighted. With every ``s_t = 0`` and
``gamma = beta`` this is TRL's sigmoid DPO loss.

The authors' released code computes a different, per-position loss; the
README says how it differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from accelerate.utils import is_peft_model
from trl import DPOConfig
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import pad, use_adapter

from pts.train.data import ID_KEYS, SCORES_KEY
from pts.train.dpo import PreTokenizedDPOTrainer


def cdpo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    rejected_weights: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Per-pair cDPO loss ``-log sigmoid(gamma * (sum_t c_t - sum_t w_t * r_t))``.

    ``chosen_logratios`` (B, Tc) and ``rejected_logratios`` (B, Tr) are per-token
    ``log pi_theta - log pi_ref``; ``rejected_weights`` (B, Tr) are the weights
    ``w_t = 1 - s_t`` applied to the rejected tokens (0 removes a token's
    contribution); the masks (same shapes) select completion tokens. Returns
    the loss of each pair, shape (B,).
    """
    chosen = torch.where(chosen_mask.bool(), chosen_logratios, 0).sum(-1)
    rejected = torch.where(rejected_mask.bool(), rejected_weights * rejected_logratios, 0).sum(-1)
    return -F.logsigmoid(gamma * (chosen - rejected))


@dataclass
class CDPOConfig(DPOConfig):
    """``DPOConfig`` plus the cDPO options.

    ``gamma`` scales the weighted log-ratio margin as ``beta`` does in DPO
    (``beta`` itself is unused by cDPO); 0.1 is the value of the authors'
    released configuration (their DPO ``beta``). ``scores_column`` names the
    dataset column with one score ``s_t`` in [0, 1] per rejected token.
    """

    gamma: float = field(default=0.1, metadata={"help": "Scale of the weighted log-ratio margin (beta of DPO)."})
    scores_column: str = field(
        default=SCORES_KEY, metadata={"help": "Column with the CE score s_t of every rejected token."}
    )


@dataclass
class DataCollatorForWeightedPreference(DataCollatorForPreference):
    """TRL's preference collator plus ``rejected_weights``: ``1 - s_t`` at each rejected token, 0 elsewhere.

    The weights have the shape of one half of ``input_ids`` (B, L) and are
    truncated and padded exactly as the rejected sequences are, so position
    ``p`` weighs token ``p`` of ``prompt_ids + rejected_ids``.
    """

    scores_key: str = SCORES_KEY

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = super().torch_call(examples)
        weights = []
        for ex in examples:
            w = [0.0] * len(ex["prompt_ids"]) + [1.0 - s for s in ex[self.scores_key]]
            if self.max_length is not None:  # keep_start, as the parent truncates the sequences
                w = w[: self.max_length]
            weights.append(torch.tensor(w, dtype=torch.float32))
        w = pad(weights, padding_value=0.0, padding_side="right", pad_to_multiple_of=self.pad_to_multiple_of)
        half = output["input_ids"].size(1)
        output["rejected_weights"] = w[:, :half] if w.size(1) >= half else F.pad(w, (0, half - w.size(1)))
        return output


class CDPOTrainer(PreTokenizedDPOTrainer):
    """``trl.DPOTrainer`` with the cDPO loss (:func:`cdpo_loss`) on pre-tokenized, scored pairs.

    The train dataset needs ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` and
    ``args.scores_column`` (one ``s_t`` per rejected id). The reference is
    TRL's: with a PEFT model and no ``ref_model`` the policy with its adapter
    disabled, otherwise ``ref_model``.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "dpo", "cdpo", "pts"]
    _name = "cDPO"

    def __init__(
        self, model, ref_model=None, args: CDPOConfig | None = None, data_collator=None, train_dataset=None, **kwargs
    ):
        if args is None:
            args = CDPOConfig("cdpo-output")
        if not isinstance(args, CDPOConfig):
            raise TypeError(f"CDPOTrainer needs a CDPOConfig, got {type(args).__name__}")
        if args.precompute_ref_log_probs:
            raise ValueError("cDPO needs per-token reference log-probs; precompute_ref_log_probs stores only sums")
        if args.ld_alpha is not None or args.use_weighting or args.f_divergence_type != "reverse_kl":
            raise ValueError(
                "ld_alpha, use_weighting and f_divergence_type are DPO variants that cDPO does not combine"
            )
        if args.loss_type != ["sigmoid"]:
            raise ValueError(f"cDPO has its own loss; loss_type must stay 'sigmoid', got {args.loss_type}")
        if train_dataset is not None:
            missing = [c for c in (*ID_KEYS, args.scores_column) if c not in (train_dataset.column_names or [])]
            if missing:
                raise ValueError(f"cDPO train_dataset lacks columns {missing}")
        if data_collator is None:
            tok = kwargs.get("processing_class")
            pad_id = getattr(tok, "pad_token_id", None)
            if pad_id is None:
                pad_id = getattr(tok, "eos_token_id", None)
            if pad_id is None:
                raise ValueError("cDPO needs a processing_class with a pad or EOS token")
            data_collator = DataCollatorForWeightedPreference(
                pad_token_id=pad_id,
                max_length=args.max_length,
                truncation_mode=args.truncation_mode,
                pad_to_multiple_of=args.pad_to_multiple_of,
                scores_key=args.scores_column,
            )
        self.gamma = args.gamma
        super().__init__(
            model, ref_model=ref_model, args=args, data_collator=data_collator, train_dataset=train_dataset, **kwargs
        )

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.args.scores_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.args.scores_column]

    def per_token_logratios(self, model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token ``log pi_theta - log pi_ref`` of every completion token, and the completion mask (both (2B, L-1))."""
        model_kwargs = {
            "input_ids": inputs["input_ids"],
            "attention_mask": inputs["attention_mask"],
            "use_cache": False,
        }
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[:, 1:]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        seq_len = shift_mask.size(1)
        logps = outputs.log_probs[:, -seq_len:]
        with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            if is_peft_model(self.model) and self.ref_model is None:
                unwrapped = self.accelerator.unwrap_model(self.model)
                ctx = use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
                with ctx:
                    ref_outputs = self.model(**model_kwargs, labels=labels, fused_lm_head=True)
            else:
                ref_outputs = self.ref_model(**model_kwargs, labels=labels, fused_lm_head=True)
        ref_logps = ref_outputs.log_probs[:, -seq_len:]
        return torch.where(shift_mask.bool(), logps - ref_logps, 0), shift_mask

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        logratios, mask = self.per_token_logratios(model, inputs)
        chosen_lr, rejected_lr = logratios.chunk(2, dim=0)
        chosen_mask, rejected_mask = mask.chunk(2, dim=0)
        weights = inputs["rejected_weights"][:, 1:].to(rejected_lr.dtype)  # token p+1 is scored at position p
        per_pair = cdpo_loss(chosen_lr, rejected_lr, weights, chosen_mask, rejected_mask, self.gamma)
        loss = per_pair.mean()

        with torch.no_grad():
            chosen_rewards = self.gamma * chosen_lr.sum(-1)
            rejected_rewards = self.gamma * (weights * rejected_lr).sum(-1)
            gather = self.accelerator.gather_for_metrics
            metrics = self._metrics[mode]
            metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
            metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
            metrics["rewards/accuracies"].append(gather((chosen_rewards > rejected_rewards).float()).mean().item())
            metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
            metrics["weights/rejected_mean"].append(
                gather((weights * rejected_mask).sum() / rejected_mask.sum().clamp(min=1)).mean().item()
            )
        return (loss, {"per_pair_loss": per_pair.detach()}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # cDPO has no logits to return (the fused head never builds them): evaluation reports the loss only.
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
