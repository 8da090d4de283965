"""One student of a ``sequence-classification`` config: built from the teacher, distilled from the
cached teacher outputs (optionally warmed up before its within-layer transforms, in stages), and
scored on validation, either as training sees it or as its saved folder will run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from autodistill.data import Encoded, encode
from autodistill.errors import ConfigError
from autodistill.losses import CompositeLoss, LossDims, resolve_layer_map
from autodistill.specs import LossSpec, StudentSpec, TrainSpec
from autodistill.tasks.sequence_classification.prepare import Prepared, train_indices, train_spec
from autodistill.train.loop import TrainResult, train
from autodistill.train.teacher_signal import CachedTeacher, eager_attention


@dataclass
class StudentRun:
    build: Any  # student.build.StudentBuild
    train: TrainResult
    validation: dict[str, float]
    token_id_map: torch.Tensor | None
    warmup_steps: int = 0  # distill.prune_after: steps trained before the within-layer transforms applied
    targets: dict[str, Any] | None = None  # combined teachers or an assistant (``student_targets``); None: the teacher


def student_quality(
    prep: Prepared,
    model: Any,
    split: str,
    token_id_map: torch.Tensor | None,
    shipped: tuple[Encoded, int] | None = None,
) -> dict[str, float]:
    """Quality on ``split`` as training sees it (the teacher's tokens, mapped through
    ``token_id_map``), or, with ``shipped`` (``shipped_split``'s encoding and pad id), as users of
    the saved student will (its own tokenizer; no map)."""
    from autodistill.evaluate import agreement, task_metrics
    from autodistill.train.inference import predict_logits

    enc, pad_id = shipped or (prep.encoded[split], prep.pad_id)
    token_id_map = None if shipped is not None else token_id_map
    device = next(model.parameters()).device
    logits = predict_logits(model, enc, pad_id, prep.cfg.distill.eval_batch_size, device, token_id_map)
    preds = logits.argmax(-1)
    out = task_metrics(enc.labels, preds, prep.cfg.data.metric)
    out["teacher_agreement"] = agreement(preds, prep.teacher_preds(split))
    return out


def class_report(prep: Prepared, build: Any, split: str = "test") -> dict[str, Any]:
    """Recall per class of the student as its saved folder runs and of the teacher, the support of
    each class, and the classes the student drops (``evaluate.metrics.dropped_classes``)."""
    from autodistill.evaluate.metrics import dropped_classes, per_class_recall
    from autodistill.train.inference import predict_logits

    enc, pad_id = shipped_split(prep, build, split)
    model = build.model
    logits = predict_logits(model, enc, pad_id, prep.cfg.distill.eval_batch_size, next(model.parameters()).device)
    names = list(prep.data.label_names)
    student = per_class_recall(enc.labels, logits.argmax(-1), len(names))
    teacher = per_class_recall(enc.labels, prep.teacher_preds(split), len(names))
    return {
        "split": split,
        "classes": names,
        "support": [int((enc.labels == c).sum()) for c in range(len(names))],
        "student_recall": student,
        "teacher_recall": teacher,
        "dropped": dropped_classes(student, teacher, names),
    }


def shipped_split(prep: Prepared, build: Any, split: str) -> tuple[Encoded, int]:
    """``split`` encoded as users of the saved student will encode it, with its own tokenizer, and
    that tokenizer's pad id. Only a vocabulary-pruned student differs from the teacher's tokens
    mapped through its ``token_id_map``: its tokenizer splits a word that needs a dropped piece into
    kept pieces (or one [UNK]), where training mapped that piece to [UNK]; reported test metrics
    are measured this way so that ``autodistill evaluate`` on the saved folder gives them back."""
    if build.token_id_map is None:
        return prep.encoded[split], prep.pad_id
    tokenizer = build.remap_tokenizer(prep.teacher.tokenizer)
    return encode(prep.data.split(split), tokenizer, prep.cfg.data.max_length), int(tokenizer.pad_token_id)


def shipped_quality(prep: Prepared, build: Any, split: str = "test") -> dict[str, float]:
    """``student_quality`` of ``build.model`` as its saved folder will run (``shipped_split``)."""
    return student_quality(prep, build.model, split, None, shipped_split(prep, build, split))


def distill_student(
    prep: Prepared,
    student: StudentSpec | None,
    loss: LossSpec,
    spec: TrainSpec | None = None,
    indices: np.ndarray | None = None,
    evaluate: Any = None,
    keep_best: bool | None = None,
    built: Any = None,
    augment: bool = True,
    calibration_examples: int | None = None,
    shipped_validation: bool | None = None,
) -> StudentRun:
    """Build one student from the teacher, distill it from the cache, score it on validation.

    ``evaluate(step, quality)`` (optional) is called at each checkpoint; it may raise
    ``train.loop.StopTraining`` to end the run early (the search prunes with it).
    ``built`` (optional): a student already built (export passes one rebuilt from a trial's
    resolved record with ``student.build.rebuild_student``); ``student`` is then not used.
    ``augment=False`` turns ``distill.augment`` off for this run (search proxies, unless
    ``distill.augment.in_search``). ``calibration_examples``: how many training examples the
    pruning transforms score on (default ``student.calibration_examples``; the search passes
    ``search.calibration_examples``).
    ``shipped_validation`` (default: as ``keep_best``, i.e. full-length runs): validation, at every
    checkpoint and at the end, is encoded as the student ships (``shipped_split``), so the kept
    checkpoint, export's candidates and the card are chosen and reported on what users will run;
    search proxies (and their ``--no-retrain`` replays) keep the training encoding they were
    ranked on.
    """
    from autodistill.student.build import (
        build_for_warmup,
        build_student,
        prune_stages,
        recorded_stages,
        split_for_warmup,
    )

    cfg = prep.cfg
    ctx = prep.build_context(calibration_examples)
    indices = train_indices(prep) if indices is None else indices
    spec = spec or train_spec(cfg, len(indices))
    tmodel = prep.teacher_model()
    if built is None and student is None:
        raise ValueError("distill_student needs a StudentSpec or an already built student (built=).")
    keep_best = cfg.distill.mode == "full" if keep_best is None else keep_best
    shipped_validation = keep_best if shipped_validation is None else shipped_validation
    warmup = spec.prune_after > 0 and spec.steps >= 2  # the within-layer transforms wait for the warm-up
    stages = None
    if built is not None:
        split = split_for_warmup(tmodel, built) if warmup else None
        if split is not None:  # the stages a gradually pruned record holds
            stages = recorded_stages(built, split[1])
    else:
        split = build_for_warmup(tmodel, student, ctx) if warmup else None
        built = build_student(tmodel, student, ctx) if split is None else None
    if split is not None and stages is None:
        # a run too short for every stage (a step each) prunes in as many as it can
        stages = prune_stages(split[0].shape, split[1], min(spec.prune_stages, spec.steps - 1), ctx)
    k = 0
    if split is None:
        val = shipped_split(prep, built, "validation") if shipped_validation else None
        result, id_map = _train_stage(prep, tmodel, built, loss, spec, indices, evaluate, keep_best, augment, val=val)
    else:  # distill.prune_after: warm up before the within-layer transforms, then prune and go on
        built, warm, points = _warm_and_prune(prep, tmodel, split[0], stages, loss, spec, indices, ctx, augment)
        rest_spec = replace(spec, steps=spec.steps - points[-1])
        val = shipped_split(prep, built, "validation") if shipped_validation else None
        result, id_map = _train_stage(
            prep, tmodel, built, loss, rest_spec, indices, evaluate, keep_best, augment, points[-1], val=val
        )
        result, k = _joined([*warm, result]), points[0]
    validation = student_quality(prep, built.model, "validation", id_map, val)
    record = student_targets(prep, spec, built.shape.num_layers, tmodel.config.num_hidden_layers)[1]
    return StudentRun(built, result, validation, id_map, k, record)


def student_targets(
    prep: Prepared, spec: TrainSpec, student_layers: int, teacher_layers: int
) -> tuple[dict[str, np.ndarray] | None, dict[str, Any] | None]:
    """The logits a student of ``student_layers`` learns from, per split, and their record: the
    assistant's (``spec.assistant``, when it lies strictly between the student's depth and the
    teacher's), else every teacher's combined (``teacher.extra``, ``spec.combine``); (None, None)
    for the teacher's own cached logits. A record also says when an assistant was skipped."""
    from autodistill.tasks.sequence_classification.assistant import assistant_logits

    # computed once per preparation: every stage and every run of a search asks again
    combined = prep.memo(("teachers", spec.combine), lambda: prep.teachers_record(spec.combine))
    if spec.assistant is not None:
        if student_layers < spec.assistant < teacher_layers:
            key = ("assistant", spec.assistant, spec.combine)
            logits, record = prep.memo(key, lambda: assistant_logits(prep, spec.assistant, spec.combine))
            return logits, {"kind": "assistant", "assistant": record, "teachers": combined}
        skipped = (
            f"the assistant's {spec.assistant} layers do not lie between the student's {student_layers} and "
            f"the teacher's {teacher_layers}, so the student learned from the teacher directly"
        )
    else:
        skipped = None
    if combined is not None:
        logits = {s: prep.teacher_logits(s, spec.combine) for s in ("train", "validation", "test")}
        return logits, {"kind": "teachers", "teachers": combined, "assistant_skipped": skipped}
    return None, ({"kind": "teacher", "assistant_skipped": skipped} if skipped else None)


def prune_points(spec: TrainSpec, stages: int) -> list[int]:
    """The step after which each pruning stage applies: stage i of n after ``i / n`` of
    ``prune_after``'s share of the steps, at least one step apart, the last before the end."""
    points, last = [], 0
    for i in range(1, stages + 1):
        k = max(last + 1, round(spec.prune_after * spec.steps * i / stages))
        points.append(min(k, spec.steps - 1 - (stages - i)))
        last = points[-1]
    return points


def _warm_and_prune(prep, tmodel, first, stages, loss, spec, indices, ctx, augment):
    """Train ``first`` up to each pruning point, then apply that stage's transforms to its own
    weights (``distill.prune_after``, ``distill.prune_stages``). Returns the pruned student, the
    warm-up stages' results and the pruning points."""
    from autodistill.student.build import extend_student

    points = prune_points(spec, len(stages))
    if points[0] < 1 or len(set(points)) < len(points):
        raise ConfigError(
            f"The student was pruned in {len(stages)} stages (distill.prune_stages), but {spec.steps} training "
            f"steps are too few to give each stage a step; train at least {len(stages) + 1} steps."
        )
    current, done, results = first, 0, []
    for number, (group, point) in enumerate(zip(stages, points), start=1):
        # distill.qat quantises the pruned student's last steps only (train.loop.qat_start)
        stage_spec = replace(spec, steps=point - done, eval_every=None, qat=0.0)
        res, _ = _train_stage(prep, tmodel, current, loss, stage_spec, indices, None, False, augment, done, score=False)
        results.append(res)
        current = extend_student(tmodel, current, group, ctx, stage=number if len(stages) > 1 else None)
        done = point
    return current, results, points


def _joined(parts: list[TrainResult]) -> TrainResult:
    """One result for a run trained in stages (each counts its steps on from the one before)."""
    return replace(
        parts[-1],
        steps=sum(p.steps for p in parts),
        seconds=sum(p.seconds for p in parts),
        history=[h for p in parts for h in p.history],
        weights=[w for p in parts for w in p.weights],
    )


def _train_stage(
    prep: Prepared,
    tmodel: Any,
    built: Any,
    loss: LossSpec,
    spec: TrainSpec,
    indices: np.ndarray,
    evaluate: Any,
    keep_best: bool,
    augment: bool,
    step_offset: int = 0,
    score: bool = True,
    val: tuple[Encoded, int] | None = None,
) -> tuple[TrainResult, torch.Tensor | None]:
    """Distill ``built.model`` for ``spec.steps`` steps; its training result and token-id map.
    ``score=False``: no validation pass at all (a warm-up whose score nothing reads). ``val``:
    validation encoded as shipped (``shipped_split``), else the training encoding."""
    model = built.model
    layer_map = resolve_layer_map(loss.layer_map, built.shape.num_layers, tmodel.config.num_hidden_layers)
    dims = LossDims(
        student_hidden=built.shape.hidden,
        teacher_hidden=tmodel.config.hidden_size,
        student_heads=tuple(l.heads for l in built.shape.layers),
        teacher_heads=tmodel.config.num_attention_heads,
        num_labels=prep.data.num_labels,
    )
    loss_fn = CompositeLoss(loss, dims, layer_map)
    if "attentions" in loss_fn.needs and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    qkv = loss_fn.teacher_qkv_layers() if "qkv" in loss_fn.needs else []
    outputs = prep.ensure_outputs(loss_fn.teacher_hidden_layers(), loss_fn.teacher_attention_layers(), qkv)
    logits, record = student_targets(prep, spec, built.shape.num_layers, tmodel.config.num_hidden_layers)
    if logits is not None:
        from autodistill.teacher.ensemble import Retargeted

        outputs = Retargeted(outputs, logits, f"the {record['kind']} logits (distill.combine, distill.assistant)")
    id_map = None if built.token_id_map is None else torch.as_tensor(np.asarray(built.token_id_map), dtype=torch.long)

    def on_eval(step: int) -> float:
        q = student_quality(prep, model, "validation", id_map, val)["quality"]
        if evaluate is not None:
            evaluate(step, q)
        return q

    augmenter, labeller = _augmentation(prep, tmodel, loss_fn, qkv, spec.seed) if augment else (None, None)
    with eager_attention(tmodel, labeller is not None and bool(labeller.attention)):
        result = train(
            model,
            loss_fn,
            prep.encoded["train"],
            indices,
            spec,
            prep.pad_id,
            teacher=CachedTeacher(outputs),
            layer_map=layer_map,
            temperature=loss.temperature,
            token_id_map=id_map,
            evaluate=on_eval if score else None,
            keep_best=keep_best,
            progress=prep.progress,
            augment=augmenter,
            augment_teacher=labeller,
            step_offset=step_offset,
        )
    model.to("cpu")
    if labeller is not None:
        tmodel.to("cpu")  # the shared teacher goes back where every other stage expects it
    return result, id_map


def _augmentation(prep: Prepared, tmodel: Any, loss_fn: CompositeLoss, qkv: list[int], seed: int) -> tuple:
    """``distill.augment``: the augmenter and the live teacher that labels its copies (or Nones)."""
    opts = prep.augment()[0]
    if opts.ratio <= 0:
        return None, None
    from autodistill.data.augment import Augmenter
    from autodistill.train.teacher_signal import LiveTeacher

    ctx = prep.token_context()
    tok = prep.teacher.tokenizer
    attention = loss_fn.teacher_attention_layers()  # distill_student runs the labeller under eager_attention
    pool = prep.unlabeled()[1] if prep.cfg.data.unlabeled else None
    embeddings = tokens = None
    if opts.neighbour_prob > 0:
        embeddings = tmodel.get_input_embeddings().weight
        tokens = tok.convert_ids_to_tokens(list(range(embeddings.shape[0])))
    augmenter = Augmenter(
        opts, ctx.token_counts, ctx.special_token_ids, tok.mask_token_id, prep.pad_id, seed, pool, embeddings, tokens
    )
    labeller = LiveTeacher(tmodel, loss_fn.teacher_hidden_layers(), attention, prep.teacher.label_order, qkv)
    return augmenter, labeller
