"""TRL's SFTTrainer, able to train where its fused loss kernel cannot run.

TRL 1.15 computes the SFT loss with a Triton kernel (trl.kernels.ChunkedLogProbFunction) that also
yields per-token entropy and accuracy. Triton needs CUDA and does not ship with CPU torch, so on a
CPU machine SFTTrainer.compute_loss fails with "'NoneType' object has no attribute 'apply'". There,
this subclass uses the model's own loss (what transformers' Trainer does), which also skips the
entropy/accuracy metrics that cost ~45% of a step at tiny sizes. On CUDA with Triton nothing changes.

Importing Unsloth replaces trl.SFTTrainer with its generated UnslothSFTTrainer (not a subclass), so
this module is imported only after methods.import_unsloth_first: the class then inherits Unsloth's.
"""

from __future__ import annotations

import importlib.util

import torch
from transformers import Trainer
from trl import SFTTrainer


def fused_loss_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("triton") is not None


class PortableSFTTrainer(SFTTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if fused_loss_available():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs["use_cache"] = False
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
