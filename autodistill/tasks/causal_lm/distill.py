"""One student of a ``causal-lm`` config: cut from the teacher (``student.py``), distilled from the
cached top-k targets (``train.py``, ``losses.py``) and scored on validation: perplexity (as
``quality`` = 1 / perplexity), next-token top-1 agreement with the teacher and KL to it. A loss
with hidden-state terms maps the student's layers to the teacher layers its ``depth`` records say
it was cut from (:func:`hidden_geometry`), and the train split's cache is extended with the
teacher's states at those layers before training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodistill.specs import LossSpec, StudentSpec, TrainSpec
from autodistill.tasks.base import train_spec
from autodistill.tasks.causal_lm.losses import HiddenGeometry
from autodistill.tasks.causal_lm.prepare import LMPrepared, quality_of
from autodistill.train.loop import TrainResult


@dataclass
class LMBuild:
    """A built student and the records that rebuild it from the teacher alone. ``model`` is the
    model that trains (with a ``lora`` step, a peft model holding the adapters); ``export_model``
    the plain model it ships as."""

    model: Any
    records: list[dict[str, Any]]

    @property
    def resolved(self) -> dict[str, Any]:
        from autodistill.tasks.causal_lm.factored import is_factored
        from autodistill.tasks.causal_lm.student import plain_class

        kind = "registered" if is_factored(self.model.config) else "stock"
        return {"kind": kind, "architecture": plain_class(self.model).__name__, "transforms": self.records}

    def export_model(self) -> Any:
        """The plain model of the teacher's class: ``model`` itself, or, with adapters, a fresh
        merged copy at each call. A copy rather than merging ``model`` once and caching it: the
        search measures a student and may go on training it, and a cached merge would go stale
        while merging in place would end the adapters' training."""
        from autodistill.tasks.causal_lm.student import shipped_model

        return shipped_model(self.model)

    def save(self, folder: Path, tokenizer: Any) -> None:
        model = self.export_model().to("cpu").eval()
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)


@dataclass
class LMRun:
    build: LMBuild
    train: TrainResult
    validation: dict[str, float]
    warmup_steps: int = 0


def transforms_of(student: StudentSpec) -> list[dict[str, Any]]:
    return [s.to_dict() for s in student.transforms]


def build(prep: LMPrepared, student: StudentSpec, calibration_examples: int | None = None) -> LMBuild:
    from autodistill.tasks.causal_lm.student import build_student

    model, records = build_student(prep.teacher_model(), transforms_of(student), prep.calibration(calibration_examples))
    return LMBuild(model, records)


def hidden_geometry(teacher_config: Any, student_config: Any, records: list[dict[str, Any]]) -> HiddenGeometry:
    """The layer and width sizes of student and teacher, which teacher layer (0-based) each student
    layer was cut from (the ``depth`` records' kept indices, composed) and which teacher hidden
    channels it kept (the ``hidden`` records'); either is None where the records do not account
    for the student's shape."""
    cut = list(range(teacher_config.num_hidden_layers))
    channels = list(range(teacher_config.hidden_size))
    for rec in records:
        keep = [int(i) for i in rec["resolved"]["keep"]] if rec["name"] in ("depth", "hidden") else []
        if rec["name"] == "depth":
            cut = [cut[i] for i in keep]
        elif rec["name"] == "hidden":
            channels = [channels[j] for j in keep]
    n_s, d_s = int(student_config.num_hidden_layers), int(student_config.hidden_size)
    return HiddenGeometry(
        student_layers=n_s,
        teacher_layers=int(teacher_config.num_hidden_layers),
        student_hidden=d_s,
        teacher_hidden=int(teacher_config.hidden_size),
        cut_from=tuple(cut) if len(cut) == n_s else None,
        channels=tuple(channels) if len(channels) == d_s else None,
    )


def planned_geometry(teacher_config: Any, transforms: list[dict[str, Any]]) -> HiddenGeometry | None:
    """:func:`hidden_geometry` of the student ``transforms`` will cut, before it is built; None
    when a ``depth`` step picks its layers on data (by importance)."""
    from autodistill.tasks.causal_lm.student import LM_TRANSFORMS, parse_steps, plan_config

    final = plan_config(teacher_config, transforms)  # checks every step, errors naming its key
    config, records = teacher_config, []
    for name, options in parse_steps(transforms):
        step = LM_TRANSFORMS.get(name)()
        if name == "depth":
            if step.needs_data(config, options):
                return None
            records.append({"name": name, "resolved": step.resolve(None, config, options, None)})
        config = step.plan(config, options)
    return hidden_geometry(teacher_config, final, records)


def split_metrics(prep: LMPrepared, model: Any, split: str, batch_size: int = 8) -> dict[str, float]:
    """Perplexity (``quality`` = exp(-NLL)), top-1 agreement with the teacher and KL(teacher || student)
    on ``split``, in one pass, against the cached top-k targets (the KL over the k kept tokens and
    the tail bucket)."""
    from autodistill.tasks.causal_lm.losses import loss_mask
    from autodistill.tasks.causal_lm.topk import student_log_probs, teacher_log_probs

    s, store = prep.encoded[split], prep.targets[split]
    device = next(model.parameters()).device
    nll = agree = kl = 0.0
    tokens = 0
    block = s.input_ids.shape[1]
    for start in range(0, len(s), batch_size):
        rows = np.arange(start, min(start + batch_size, len(s)))
        ids = torch.as_tensor(np.asarray(s.input_ids[rows]), dtype=torch.long, device=device)
        mask = torch.as_tensor(np.asarray(s.attention_mask[rows]), dtype=torch.long, device=device)
        labels = torch.as_tensor(np.asarray(s.labels[rows]), dtype=torch.long, device=device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits[..., : prep.vocab].float()
        counted = loss_mask(labels)
        target = store.batch(rows, block, device)
        nxt = torch.roll(labels, -1, dims=1).clamp_min(0)
        logp = torch.log_softmax(logits, -1).gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
        p_t = teacher_log_probs(target, 1.0)
        q_s = student_log_probs(logits, target, 1.0)
        kl_pos = (p_t.exp() * (p_t - q_s)).sum(-1)
        nll -= float(logp[counted].sum())
        agree += float((logits.argmax(-1) == target.indices[..., 0])[counted].sum())
        kl += float(kl_pos[counted].sum())
        tokens += int(counted.sum())
    tokens = max(1, tokens)
    out = quality_of({"nll": nll / tokens, "perplexity": float(np.exp(nll / tokens)), "tokens": tokens})
    return {**out, "top1_agreement": agree / tokens, "kl": kl / tokens}


def distill_student(
    prep: LMPrepared,
    student: StudentSpec | None,
    loss: LossSpec,
    spec: TrainSpec | None = None,
    indices: np.ndarray | None = None,
    evaluate: Any = None,
    keep_best: bool | None = None,
    built: LMBuild | None = None,
    augment: bool = True,
    calibration_examples: int | None = None,
) -> LMRun:
    """Build one student, distil it from the cache, score it on validation. ``evaluate(step,
    quality)`` runs at each checkpoint and may raise ``StopTraining``; ``built``: a student already
    rebuilt from a record (export). ``augment=False`` leaves ``distill.on_policy`` out (search
    proxies), as it leaves the classifier's augmented copies out."""
    from autodistill.tasks.causal_lm.losses import build_lm_loss
    from autodistill.tasks.causal_lm.train import train_lm

    cfg = prep.cfg
    if built is None:
        if student is None:
            raise ValueError("distill_student needs a StudentSpec or an already built student (built=).")
        built = build(prep, student, calibration_examples)
    indices = np.arange(len(prep.encoded["train"])) if indices is None else indices
    spec = spec or train_spec(cfg, len(indices))
    keep_best = cfg.distill.mode == "full" if keep_best is None else keep_best
    geometry = hidden_geometry(prep.teacher_model().config, built.model.config, built.records)
    loss_fn = build_lm_loss([t.to_dict() for t in loss.terms], loss.temperature, geometry)
    targets = prep.train_targets(loss_fn.teacher_hidden_layers())  # extends the cache when it lacks them

    def checkpoint(step: int) -> float:
        quality = split_metrics(prep, built.model, "validation")["quality"]
        if evaluate is not None:
            evaluate(step, quality)
        return quality

    result = train_lm(
        built.model,
        loss_fn,
        prep.encoded["train"],
        targets,
        indices,
        spec,
        evaluate=checkpoint,
        keep_best=keep_best,
        progress=prep.progress,
        vocab=prep.vocab,
        on_policy=_on_policy(prep, loss_fn, spec.seed) if augment else None,
    )
    return LMRun(built, result, split_metrics(prep, built.model, "validation"))


def _on_policy(prep: LMPrepared, loss_fn: Any, seed: int) -> Any:
    """``distill.on_policy``'s sampler, or None when it is 0."""
    from autodistill.errors import ConfigError
    from autodistill.tasks.causal_lm.on_policy import OnPolicy

    share = prep.cfg.distill.on_policy
    if share <= 0:
        return None
    if loss_fn.needs_hidden:
        raise ConfigError(
            "The 'distill.on_policy' parameter cannot be combined with a hidden-state loss term (the teacher's "
            f"states are cached for the data's text, not the student's). Got {share} with hidden-state terms."
        )
    pad = prep.teacher.tokenizer.pad_token_id
    pad = prep.teacher.tokenizer.eos_token_id if pad is None else pad
    return OnPolicy(share, prep.teacher_model, prep.cfg.distill.top_k, prep.vocab, int(pad), seed)
