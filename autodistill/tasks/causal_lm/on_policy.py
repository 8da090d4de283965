"""On-policy distillation (GKD, Agarwal et al. 2024): on a share of the training steps the student
learns on its own text instead of the data's. The batch's first half is the prompt, the student
samples the second half (transformers' ``generate``, temperature 1, no top-k/top-p cut), and the
live teacher scores every position of the result, so the student is corrected where its own
samples drift from the teacher: the mismatch between training on fixed text and generating freely.

The teacher runs inside those steps (its outputs on new text cannot be cached), which makes them
several times dearer than a cached step: ``distill.on_policy`` is 0 (off) by default, and worth it
on a GPU rather than on a few CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from autodistill.tasks.causal_lm.losses import IGNORE


class OnPolicy:
    """Swaps a share of the batches for the student's own continuations, with live teacher targets."""

    def __init__(
        self, share: float, load_teacher: Callable[[], Any], k: int, vocab: int, pad_id: int, seed: int = 0
    ) -> None:
        self.share, self.load_teacher, self.k, self.vocab, self.pad_id = share, load_teacher, k, vocab, pad_id
        self.rng = np.random.default_rng(seed)
        self.steps = 0  # steps trained on the student's own text

    def batch(self, model: Any, ids: torch.Tensor, mask: torch.Tensor) -> tuple[Any, ...] | None:
        """``(ids, attention_mask, labels, TopK)`` of the student's continuation of ``ids``' first half,
        or None for a step that stays on the data (by the share, or a prompt holding padding)."""
        from autodistill.tasks.causal_lm.topk import compress

        if self.share <= 0 or self.rng.random() >= self.share:
            return None
        block = ids.shape[1]
        half = block // 2
        if half < 1 or not bool(mask[:, :half].all()):
            return None
        prompt = ids[:, :half]
        training = model.training
        model.eval()
        with torch.no_grad():
            out = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=block - half,
                min_new_tokens=block - half,  # the end-of-text token cannot stop a row early
                pad_token_id=self.pad_id,
            )
        model.train(training)
        new = out[:, :block]
        labels = new.clone()
        labels[:, :half] = IGNORE  # the loss reads only what the student wrote
        new_mask = torch.ones_like(new)
        with torch.inference_mode():
            logits = self.load_teacher()(input_ids=new, attention_mask=new_mask).logits[..., : self.vocab].float()
        self.steps += 1
        return new, new_mask, labels, compress(logits, self.k)
