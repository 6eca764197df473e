"""Per-token log-probabilities in plain PyTorch, where TRL's Triton kernel cannot run (CPU torch).

TRL 1.15's DPO and KTO trainers patch the model's forward to compute log-probabilities with
trl.kernels.ChunkedLogProbFunction, a Triton kernel that never builds the [tokens, vocab] logits.
Triton needs CUDA and does not ship with CPU torch; there TRL leaves the function None and the first
step fails with "'NoneType' object has no attribute 'apply'" (sft.py works around the same kernel
for SFT). `use_portable_log_probs()` puts this version in its place: the same inputs and outputs,
built from the full logits (as the model's own forward does), with autograd doing the backward.
On CUDA with Triton nothing changes.
"""

from __future__ import annotations

import torch


class TorchLogProbs:
    """ChunkedLogProbFunction's contract: (log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1),
    the optional four None unless named in `outputs`."""

    @staticmethod
    def apply(
        hidden,
        weight,
        bias,
        targets,
        temperature,
        chunk_size,
        final_logit_softcapping=None,
        logit_scale=1.0,
        outputs=("entropy", "log_sum_sq_probs", "mean_logits", "is_top1"),
    ):
        logits = torch.nn.functional.linear(hidden, weight, bias) * (1.0 if logit_scale is None else logit_scale)
        if final_logit_softcapping is not None:
            logits = final_logit_softcapping * torch.tanh(logits / final_logit_softcapping)
        scaled = logits.float() / temperature
        log_p = torch.log_softmax(scaled, dim=-1)
        log_probs = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():  # metrics only (TRL logs them); gradients flow through log_probs
            entropy = -(log_p.exp() * log_p).sum(-1) if "entropy" in outputs else None
            sum_sq = torch.logsumexp(2 * log_p, dim=-1) if "log_sum_sq_probs" in outputs else None
            mean_logits = logits.float().mean(-1) if "mean_logits" in outputs else None
            is_top1 = (scaled.argmax(-1) == targets) if "is_top1" in outputs else None
        return log_probs, entropy, sum_sq, mean_logits, is_top1


def use_portable_log_probs() -> bool:
    """Install TorchLogProbs where TRL has no kernel; True when it did."""
    from trl.trainer import utils

    if utils._ChunkedLogProbFunction is not None:
        return False
    utils._ChunkedLogProbFunction = TorchLogProbs
    return True
