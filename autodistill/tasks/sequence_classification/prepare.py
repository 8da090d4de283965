"""What every student of a ``sequence-classification`` config shares: the labelled texts encoded
with the teacher's tokenizer, the teacher (fine-tuned once, or found in the teacher home), its
cached outputs and its metrics on validation and test. The search prepares once for all trials."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from autodistill.config.run import RunConfig
from autodistill.data import Encoded, TaskData, encode, load_task_data, stratified_subset, token_counts
from autodistill.fingerprint import hash_json, home
from autodistill.student.base import BuildContext
from autodistill.tasks.base import train_spec  # noqa: F401  (re-exported for the benchmarks)
from autodistill.teacher import Teacher, prepare_teacher
from autodistill.teacher.cache import TeacherCache, TeacherOutputs
from autodistill.train.teacher_signal import eager_attention

SPLITS = ("train", "validation", "test")


@dataclass
class ExtraTeacher:
    """One of ``teacher.extra``: its source, the prepared teacher, its cache key and its logits per
    split (in the data's label order)."""

    source: str
    teacher: Teacher
    cache_key: str
    logits: dict[str, np.ndarray]


@dataclass
class Prepared:
    """Everything a config's students share: data, teacher, its cached outputs and metrics."""

    cfg: RunConfig
    data: TaskData
    teacher: Teacher
    encoded: dict[str, Encoded]
    cache: TeacherCache
    outputs: TeacherOutputs
    teacher_metrics: dict[str, dict[str, float]]
    progress: bool = True
    extra: list[ExtraTeacher] = field(default_factory=list)  # teacher.extra
    _tokens: BuildContext | None = field(default=None, repr=False)
    _targets: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    _ctx: dict[int, BuildContext] = field(default_factory=dict, repr=False)  # by calibration examples
    _pool: tuple[Any, list[np.ndarray]] | None = field(default=None, repr=False)

    @property
    def cache_key(self) -> str:
        return self.cache.key

    @property
    def pad_id(self) -> int:
        return self.teacher.pad_id

    def teacher_model(self) -> Any:
        return self.teacher.model(self.cfg)

    def teacher_preds(self, split: str) -> np.ndarray:
        return self.teacher_logits(split).argmax(-1)

    def teacher_logits(self, split: str, combine: str | None = None) -> np.ndarray:
        """What students learn from on ``split``: the teacher's logits, or with ``teacher.extra``
        every teacher's combined ``combine``-wise (default ``distill.combine``; ``teacher.ensemble``)."""
        if not self.extra:
            return self.outputs.logits(split)
        from autodistill.teacher.ensemble import combine as combined

        how = combine or self.cfg.distill.combine
        if (how, split) not in self._targets:
            fitted = self.fitted_weights() if how == "learned" else None
            each = [self.outputs.logits(split), *(e.logits[split] for e in self.extra)]
            self._targets[how, split] = combined(each, how, self.cfg.teacher.weights, fitted)
        return self._targets[how, split]

    def fitted_weights(self) -> np.ndarray:
        """``distill.combine: learned``: each teacher's weight, fitted to the validation labels (once)."""
        from autodistill.teacher.ensemble import fit_weights

        def fit() -> np.ndarray:
            each = [self.outputs.logits("validation"), *(e.logits["validation"] for e in self.extra)]
            return fit_weights(each, self.encoded["validation"].labels)

        return self.memo("fitted", fit)

    def memo(self, key: Any, make: Any) -> Any:
        """``make()`` computed once per ``key`` for this preparation (what every run of it shares:
        the teachers' record, an assistant's logits read from the teacher home)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def teachers_record(self, combine: str | None = None) -> dict[str, Any] | None:
        """With ``teacher.extra``: each teacher's source and validation and test quality, how they
        were combined (and the weights, where fixed or fitted) and the combination's quality."""
        if not self.extra:
            return None
        from autodistill.evaluate import task_metrics

        how = combine or self.cfg.distill.combine

        def quality(logits: Any) -> dict[str, float]:
            return {
                s: task_metrics(self.encoded[s].labels, logits(s).argmax(-1), self.cfg.data.metric)["quality"]
                for s in ("validation", "test")
            }

        teachers = [{"model": self.cfg.teacher.model, **quality(self.outputs.logits)}]
        teachers += [{"model": e.source, **quality(lambda s, e=e: e.logits[s])} for e in self.extra]
        weights = self.fitted_weights() if how == "learned" else self.cfg.teacher.weights
        return {
            "combine": how,
            "weights": None if weights is None else [round(float(w), 4) for w in weights],
            "teachers": teachers,
            "combined": quality(lambda s: self.teacher_logits(s, how)),
        }

    def ensure_outputs(self, hidden: list[int], attention: list[int], qkv: list[int] = ()) -> TeacherOutputs:
        """Grow the cache to hold these teacher layers (computed once, shared by every run)."""
        have = self.outputs.splits["train"]
        if set(hidden) <= set(have.hidden) and set(attention) <= set(have.attention) and set(qkv) <= set(have.qkv):
            return self.outputs
        hidden = sorted(set(hidden) | set(have.hidden))
        attention = sorted(set(attention) | set(have.attention))
        qkv = sorted(set(qkv) | set(have.qkv))
        model = self.teacher_model()
        with eager_attention(model, bool(attention)):
            self.outputs = self.cache.ensure(
                model,
                self.encoded,
                self.pad_id,
                hidden,
                attention,
                qkv,
                self.teacher.label_order,
                batch_size=self.cfg.distill.eval_batch_size,
                progress=self.progress,
            )
        return self.outputs

    def unlabeled(self) -> tuple[Any, list[np.ndarray]]:
        """``data.unlabeled``: its summary (``data.unlabeled.Unlabeled``) and its texts as teacher token ids."""
        if self._pool is None:
            from autodistill.data import TextSplit
            from autodistill.data.unlabeled import load_unlabeled

            found = load_unlabeled(self.cfg.data, self.data)
            texts = TextSplit(found.texts, None, np.zeros(len(found.texts), dtype=np.int64))  # labels unused
            self._pool = (found, encode(texts, self.teacher.tokenizer, self.cfg.data.max_length).input_ids)
        return self._pool

    def augment(self) -> tuple[Any, str]:
        """``distill.augment`` with its ratio decided for this training split, and why."""
        from autodistill.data.augment import effective

        n = len(self.encoded["train"].labels)
        options = self.cfg.distill.augment
        if options.ratio is None and (self.extra or self.cfg.distill.assistant):
            why = "off: several teachers or an assistant give the targets, and the copies need one live teacher"
            return replace(options, ratio=0.0), why
        return effective(options, n, bool(self.cfg.data.unlabeled))

    def token_context(self) -> BuildContext:
        """Token statistics of the training split, no calibration batches: what plans (the
        vocabulary's kept tokens) and the augmenter read. Counted once."""
        if self._tokens is None:
            tok = self.teacher.tokenizer
            self._tokens = BuildContext(
                token_counts=token_counts(self.encoded["train"], len(tok)),
                special_token_ids=tuple(sorted(set(tok.all_special_ids))),
                unk_token_id=tok.unk_token_id,
                seed=self.cfg.seed,
            )
        return self._tokens

    def build_context(self, calibration_examples: int | None = None) -> BuildContext:
        """``token_context`` plus calibration batches (with teacher logits) for the transforms that
        score importance. ``calibration_examples``: training examples to score on (a stratified
        subset; default ``student.calibration_examples``)."""
        enc = self.encoded["train"]
        n = min(calibration_examples or self.cfg.student.calibration_examples, len(enc.labels))
        if n not in self._ctx:
            from autodistill.data import collate

            batches = []
            for chunk in np.array_split(stratified_subset(enc.labels, n, self.cfg.seed), max(1, n // 32)):
                batch = collate(enc, chunk, self.pad_id)
                batch["teacher_logits"] = torch.from_numpy(self.teacher_logits("train")[chunk])
                batches.append(batch)
            self._ctx[n] = replace(self.token_context(), calibration=batches)
        return self._ctx[n]


def cache_key(teacher: Teacher, data: TaskData, cfg: RunConfig) -> str:
    from autodistill.data import tokenizer_fingerprint

    return hash_json(
        {
            "teacher": teacher.fingerprint,
            "data": data.fingerprint,
            "tokenizer": tokenizer_fingerprint(teacher.tokenizer),
            "max_length": cfg.data.max_length,
            "labels": teacher.label_order,
        }
    )[:24]


def prepare(cfg: RunConfig, progress: bool = True) -> Prepared:
    from autodistill.evaluate import task_metrics

    data = load_task_data(cfg.data)
    teacher = prepare_teacher(cfg, data, progress=progress)
    encoded, cache, outputs = _teacher_outputs(cfg, data, teacher, progress)
    prep = Prepared(cfg, data, teacher, encoded, cache, outputs, {}, progress)
    for source in cfg.teacher.extra:  # teacher.extra: only their logits are kept
        prep.extra.append(_extra_teacher(cfg, data, source, progress))
    prep.teacher_metrics = {
        s: task_metrics(encoded[s].labels, prep.teacher_preds(s), cfg.data.metric) for s in ("validation", "test")
    }
    return prep


def _teacher_outputs(
    cfg: RunConfig, data: TaskData, teacher: Teacher, progress: bool
) -> tuple[dict[str, Encoded], TeacherCache, TeacherOutputs]:
    """Every split encoded with ``teacher``'s tokenizer, and its cached outputs (computed once)."""
    encoded = {s: encode(getattr(data, s), teacher.tokenizer, cfg.data.max_length) for s in SPLITS}
    cache = TeacherCache(home() / "cache", cache_key(teacher, data, cfg))
    if _cached(cache, encoded):
        return encoded, cache, cache.open(list(SPLITS), [], [])
    outputs = cache.ensure(
        teacher.model(cfg),
        encoded,
        teacher.pad_id,
        label_order=teacher.label_order,
        batch_size=cfg.distill.eval_batch_size,
        progress=progress,
        meta={"teacher": str(teacher.path), "data": data.source},
    )
    return encoded, cache, outputs


def _extra_teacher(cfg: RunConfig, data: TaskData, source: Any, progress: bool) -> ExtraTeacher:
    """One of ``teacher.extra``: fine-tuned (or found) like the teacher, run on every split with its
    own tokenizer; its model is let go once its logits are cached."""
    from dataclasses import fields

    from autodistill.config.run import TeacherConfig, TeacherSource

    own = replace(cfg, teacher=TeacherConfig(**{f.name: getattr(source, f.name) for f in fields(TeacherSource)}))
    teacher = prepare_teacher(own, data, progress=progress)
    _, cache, outputs = _teacher_outputs(own, data, teacher, progress)
    logits = {s: outputs.logits(s) for s in SPLITS}
    return ExtraTeacher(source.model, teacher, cache.key, logits)


def _cached(cache: TeacherCache, encoded: dict[str, Encoded]) -> bool:
    return all(not cache._missing(s, [], []) for s in encoded)


def train_indices(prep: Prepared) -> np.ndarray:
    """Proxy mode trains on a stratified subset; full mode on the whole train split."""
    labels = prep.encoded["train"].labels
    if prep.cfg.distill.mode == "proxy" and prep.cfg.distill.proxy_examples < len(labels):
        return stratified_subset(labels, prep.cfg.distill.proxy_examples, prep.cfg.seed)
    return np.arange(len(labels))
