"""Teacher adaptation (``teacher.adapt``): fine-tune a causal-LM teacher on the training text before
it teaches, so that a teacher trained on other text does not hand its students its own mismatch.

A general-purpose LM can score the user's text worse than a small student trained on that text
alone (the built-in SmolLM2 on the movie-dialogue corpus); distilling from it then pulls students
towards the wrong distribution. Minitron's "teacher correction" (Sreenivas et al. 2024) fine-tunes
the teacher on the distillation data first; this does the same with next-token cross-entropy on the
train split, the ``teacher.finetune`` settings (``epochs`` or ``max_steps`` as the cap, ``patience``
on validation perplexity, the best checkpoint kept), once per (teacher, data, settings), in the
teacher home. Every cache and metric downstream is keyed by the adapted teacher's fingerprint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from autodistill.config.run import RunConfig
from autodistill.files import replacing_folder
from autodistill.fingerprint import hash_json
from autodistill.teacher.finetune import finetune_spec, teacher_home
from autodistill.teacher.lock import filling


class _NoTargets:
    """Cross-entropy on the text needs no teacher targets."""

    def batch(self, rows: Any, block: int, device: Any = "cpu") -> None:
        return None


def adapted_fingerprint(teacher: Any, cfg: RunConfig, data: Any) -> str:
    ft = {k: v for k, v in asdict(cfg.teacher.finetune).items()}
    return hash_json({"teacher": teacher.fingerprint, "data": data.fingerprint, "adapt": ft, "version": 1})


def adapt_teacher(teacher: Any, cfg: RunConfig, data: Any, vocab: int, progress: bool = True) -> Any:
    """The teacher fine-tuned on ``data``'s train split (an ``LMTeacher`` for the adapted folder),
    made once and reused; workers started together make it once (the home lock)."""
    fp = adapted_fingerprint(teacher, cfg, data)
    folder = teacher_home() / f"lm-adapted-{fp[:24]}"
    if not (folder / "teacher.json").is_file():
        with filling(folder, "adapt the teacher", progress):
            if not (folder / "teacher.json").is_file():
                _adapt(teacher, cfg, data, vocab, folder, fp, progress)
    info = json.loads((folder / "teacher.json").read_text())
    return replace(teacher, path=folder, fingerprint=fp, finetuned=True, info=info)


def _adapt(teacher: Any, cfg: RunConfig, data: Any, vocab: int, folder: Any, fp: str, progress: bool) -> None:
    import torch

    from autodistill.tasks.causal_lm.losses import build_lm_loss
    from autodistill.tasks.causal_lm.train import train_lm
    from autodistill.train.device import resolve_device

    ft = cfg.teacher.finetune
    torch.manual_seed(ft.seed)
    model = teacher.model(cfg.teacher)
    device = str(resolve_device(cfg.distill.device))
    before_val = _validation(model, data, vocab, device)
    train = data.splits["train"]
    spec = finetune_spec(cfg, len(train))
    steps = spec.steps

    def evaluate(step: int) -> float:
        return 1.0 / _validation(model, data, vocab, device)

    if progress:
        print(
            f"adapting the teacher to the training text: at most {steps} steps of {ft.batch_size} blocks "
            f"(validation perplexity before: {before_val:.2f}) ...",
            flush=True,
        )
    result = train_lm(
        model, build_lm_loss([{"name": "ce", "weight": 1.0}], 1.0), train, _NoTargets(), np.arange(len(train)),
        spec, evaluate=evaluate, keep_best=True, progress=progress, desc="adapt teacher", vocab=vocab,
    )  # fmt: skip
    after_val = _validation(model, data, vocab, device)
    model.to("cpu")
    info = {
        "fingerprint": fp,
        "base": {"source": teacher.source, "fingerprint": teacher.fingerprint, "path": str(teacher.path)},
        "validation_perplexity_before": round(before_val, 4),
        "validation_perplexity": round(after_val, 4),
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped": result.stop_reason or "step cap",
        "curve": [[s, round(1.0 / q, 4)] for s, q in result.evals],  # (step, validation perplexity)
        "seconds": round(result.seconds, 1),
        "finetune": asdict(cfg.teacher.finetune),
        "data": data.fingerprint,
    }
    if progress:
        print(
            f"adapted teacher: validation perplexity {before_val:.2f} -> {after_val:.2f} after {result.steps} "
            f"steps (best at step {result.best_step}; stopped: {info['stopped']}; {result.seconds:.0f} s)",
            flush=True,
        )
    with replacing_folder(folder, keep_existing=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        teacher.tokenizer.save_pretrained(tmp)
        (tmp / "teacher.json").write_text(json.dumps(info, indent=2))


def _validation(model: Any, data: Any, vocab: int, device: str) -> float:
    """Validation perplexity, scored as every student's is (``measure.perplexity``, batches of 8)."""
    from autodistill.tasks.causal_lm.measure import perplexity

    val = data.splits["validation"]
    found = perplexity(model, val.input_ids, val.labels, val.attention_mask, 8, device=device, vocab=vocab)
    return float(found["perplexity"])
