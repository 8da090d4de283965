"""The run config: what one YAML file may say. Later stages add their own sections here."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from autodistill.config.schema import Invalid, require
from autodistill.specs import PickRule

TASKS = ("sequence-classification", "causal-lm")
METRICS = ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "mcc")


@dataclass(frozen=True)
class FinetuneConfig:
    """How a backbone that is not yet a classifier is fine-tuned into the teacher: by default until
    validation stops improving (checked once an epoch, ``patience`` checks without a gain), at most
    ``epochs``, the best checkpoint kept."""

    epochs: int = 4
    lr: float = 5e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    # stop after this many validation checkpoints without a gain (the best one is kept); the epochs
    # (or max_steps) are then the cap. null: train all of them
    patience: int | None = 2
    eval_every: int | None = None  # steps between validation checkpoints; null: once per epoch
    # the teacher's own seed, like data.split_seed: the run's `seed` is the student's, so a second
    # student seed reuses the same teacher instead of fine-tuning another
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", "must be >= 1", self.epochs)
        require(self.lr > 0, "lr", "must be > 0", self.lr)
        require(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)", self.warmup_ratio)
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be >= 1", self.max_steps)
        require(self.seed >= 0, "seed", "must be >= 0", self.seed)
        require(self.patience is None or self.patience >= 1, "patience", "must be >= 1", self.patience)
        require(self.eval_every is None or self.eval_every >= 1, "eval_every", "must be >= 1", self.eval_every)


@dataclass(frozen=True)
class TeacherSource:
    """One teacher: where it comes from and how a backbone is fine-tuned into it."""

    model: str = "builtin:minilm"
    revision: str | None = None
    trust_remote_code: bool = False
    safetensors_only: bool = True
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def __post_init__(self) -> None:
        require(bool(self.model.strip()), "model", "must name a folder, a hub id or a builtin", self.model)


@dataclass(frozen=True)
class TeacherConfig(TeacherSource):
    # causal-lm: first fine-tune the teacher on the training text (next-token CE, `finetune`'s
    # settings, validation perplexity for patience), once, kept in the teacher home
    adapt: bool = False
    # sequence-classification: more teachers of the same label set (their own tokenizers allowed);
    # only their logits are used, combined with this teacher's as distill.combine says. This one
    # stays the teacher students are cut from, timed against and whose layers feature terms read
    extra: list[TeacherSource] = field(default_factory=list)
    # distill.combine: weights: a fixed weight per teacher (this one first), null: equal weights
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weights is not None:
            n = 1 + len(self.extra)
            require(len(self.weights) == n, "weights", f"must give one weight per teacher ({n})", self.weights)
            ok = all(w >= 0 for w in self.weights) and sum(self.weights) > 0
            require(ok, "weights", "must be >= 0, not all 0", self.weights)


@dataclass(frozen=True)
class DataConfig:
    source: str = "builtin:rotten_tomatoes"
    config_name: str | None = None
    format: Literal["auto", "hf", "csv", "tsv", "jsonl", "parquet"] = "auto"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    # causal-lm: set, each row is a prompt (text_column) and a response (this column), the loss on
    # the response tokens only; chat_template: the pair goes through the tokenizer's chat template
    response_column: str | None = None
    chat_template: bool = False
    train_split: str = "train"
    validation_split: str | None = "validation"
    test_split: str | None = "test"
    validation_size: float = 0.1
    test_size: float = 0.1
    split_seed: int = 0
    max_length: int = 128
    max_train_examples: int | None = None
    metric: str = "accuracy"
    # Texts without labels that the teacher labels during training (``autodistill.data.unlabeled``);
    # they join ``distill.augment``'s copies (its ``unlabeled_share`` of them).
    unlabeled: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        require(
            bool(self.source.strip()), "source", "must name a builtin set, a file, a folder or a hub id", self.source
        )
        require(0 < self.validation_size < 0.5, "validation_size", "must be in (0, 0.5)", self.validation_size)
        require(0 < self.test_size < 0.5, "test_size", "must be in (0, 0.5)", self.test_size)
        require(self.split_seed >= 0, "split_seed", "must be >= 0", self.split_seed)
        require(8 <= self.max_length <= 8192, "max_length", "must be in [8, 8192]", self.max_length)
        require(
            self.max_train_examples is None or self.max_train_examples >= 2,
            "max_train_examples",
            "must be >= 2",
            self.max_train_examples,
        )
        require(self.metric in METRICS, "metric", f"must be one of {', '.join(METRICS)}", self.metric)
        for i, source in enumerate(self.unlabeled):
            ok = isinstance(source, str) and bool(source.strip())
            require(ok, f"unlabeled[{i}]", "must name a built-in set (builtin:NAME) or a file", source)


@dataclass(frozen=True)
class StudentConfig:
    """An ordered list of transforms, each ``{name: ..., <options>}``; checked by the registry."""

    transforms: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "depth", "layers": 3, "choice": "uniform"}]
    )
    require_stock_architecture: bool = False
    # training examples the pruning transforms score importance on (heads, ffn, hidden, depth by
    # importance, activation-aware low-rank) in full runs; search proxies use search.calibration_examples
    calibration_examples: int = 2048

    def __post_init__(self) -> None:
        require(self.calibration_examples >= 1, "calibration_examples", "must be >= 1", self.calibration_examples)
        for i, step in enumerate(self.transforms):
            if "name" not in step:
                raise Invalid(f"transforms[{i}].name", "is required (the transform's registered name).")


@dataclass(frozen=True)
class LossConfig:
    """A weighted sum of named loss terms; each term is ``{name: ..., weight: ..., <options>}``."""

    temperature: float = 2.0
    terms: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "ce", "weight": 0.5}, {"name": "kl", "weight": 0.5}]
    )
    layer_map: str | list[int] = "uniform"
    weighting: dict[str, Any] = field(default_factory=lambda: {"name": "static"})

    def __post_init__(self) -> None:
        require(self.temperature > 0, "temperature", "must be > 0", self.temperature)
        require(len(self.terms) > 0, "terms", "must list at least one loss term", self.terms)
        for i, term in enumerate(self.terms):
            if "name" not in term:
                raise Invalid(f"terms[{i}].name", "is required (the loss's registered name).")
            w = term.get("weight", 1.0)
            ok = isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
            require(ok, f"terms[{i}].weight", "must be a number >= 0", w)
        if "name" not in self.weighting:
            raise Invalid("weighting.name", "is required (the weighting scheme's registered name).")


@dataclass(frozen=True)
class AugmentConfig:
    """Teacher-labelled copies of each training batch (``autodistill.data.augment``); ``ratio: 0`` is off.
    They join the ``distill`` command's run and the export's final training; search proxies only
    with ``in_search`` (it slows every trial). With ``data.unlabeled``, ``unlabeled_share`` of the
    copies start from those texts instead of the batch's."""

    # copies per real example in each step; null: automatic, 1 when the training split has fewer
    # than `small_train` rows (or data.unlabeled lists texts), else 0 (``augment.effective``)
    ratio: float | None = None
    small_train: int = 5000
    in_search: bool = False
    unlabeled_share: float = 0.5
    splice_prob: float = 0.5
    mask_prob: float = 0.1
    replace_prob: float = 0.1
    # a token becomes one of its nearest tokens in the teacher's input embeddings (of `neighbours`)
    neighbour_prob: float = 0.0
    neighbours: int = 8

    def __post_init__(self) -> None:
        require(self.ratio is None or 0 <= self.ratio <= 4, "ratio", "must be in [0, 4] or null", self.ratio)
        require(self.small_train >= 0, "small_train", "must be >= 0", self.small_train)
        for name in ("unlabeled_share", "splice_prob", "mask_prob", "replace_prob", "neighbour_prob"):
            value = getattr(self, name)
            require(0 <= value <= 1, name, "must be in [0, 1]", value)
        require(1 <= self.neighbours <= 256, "neighbours", "must be in [1, 256]", self.neighbours)
        total = self.mask_prob + self.replace_prob + self.neighbour_prob
        if self.neighbour_prob > 0:
            require(total <= 1, "neighbour_prob", "plus mask_prob and replace_prob must be <= 1", total)
        require(total <= 1, "replace_prob", "plus mask_prob must be <= 1", total)


@dataclass(frozen=True)
class DistillConfig:
    mode: Literal["proxy", "full"] = "full"
    proxy_steps: int = 200
    proxy_examples: int = 2000
    # full runs (`distill`, export's final training): the cap; validation `patience` ends them sooner
    epochs: float = 6.0
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: int | None = None
    # full runs: stop after this many validation checkpoints without a gain (the best is kept);
    # epochs or max_steps are then the cap. null: train them all
    patience: int | None = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True
    # > 0: the student trains this share of its steps before its within-layer transforms (heads, ffn,
    # hidden, low_rank and any after the first of them) apply, their choices scored on its own weights
    prune_after: float = 0.0
    # with prune_after: heads and FFN neurons are cut in this many stages, evenly spaced over the
    # warm-up (stage k of n after k/n of it), a geometric share of the cut each, every stage scored
    # on the student's own weights; other within-layer transforms apply at the last stage
    prune_stages: int = 1
    # > 0: the student that is evaluated, kept and saved is an exponential moving average of its
    # weights over the steps (Polyak averaging), with this decay (e.g. 0.99: about the last 100 steps)
    ema: float = 0.0
    # set: the student's dropout rate (every dropout layer: embeddings, attention, FFN, classifier)
    # while it trains; unset keeps its config's (the teacher's). Only training changes: a saved student
    # carries its config's rate, and dropout does nothing at inference
    dropout: float | None = None
    # causal-lm: the teacher's logits are cached per token as its top_k logits, their indices and the
    # log-sum-exp of the rest
    top_k: int = 64
    # causal-lm: the share of training steps on the student's own continuation of each batch's first
    # half, scored by the live teacher (on-policy distillation, GKD); 0 is off. Full runs only (search
    # proxies leave it out unless distill.augment.in_search); the teacher runs in those steps
    on_policy: float = 0.0
    # with teacher.extra: how the teachers' predictions combine into the one target: mean (a fixed
    # weight each, teacher.weights or equal), confidence (per example, each teacher weighted by how
    # sure it is), learned (weights fitted to the validation labels)
    combine: Literal["mean", "confidence", "learned"] = "mean"
    # set: distil teacher -> assistant -> student. The assistant keeps this many of the teacher's
    # layers (evenly spaced), is distilled from the teacher once at full length (seeded like the
    # teacher) and cached; students shallower than it learn from its logits instead of the teacher's
    assistant: int | None = None
    # > 0: the last share of the full training's steps runs with the student's Linear layers and
    # embeddings fake-quantised to the int8 export's grids (quantisation-aware distillation), its
    # checkpoints judged that way; e.g. 0.5: the last half. Search proxies leave it out unless the
    # search space's train section sets it. Classifiers only (causal LMs have no int8 export)
    qat: float = 0.0
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        require(self.proxy_steps >= 1, "proxy_steps", "must be >= 1", self.proxy_steps)
        require(self.proxy_examples >= 2, "proxy_examples", "must be >= 2", self.proxy_examples)
        require(1 <= self.top_k <= 4096, "top_k", "must be in [1, 4096]", self.top_k)
        require(0 <= self.on_policy <= 1, "on_policy", "must be in [0, 1]", self.on_policy)
        require(self.epochs > 0, "epochs", "must be > 0", self.epochs)
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be >= 1", self.max_steps)
        require(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        require(self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1", self.eval_batch_size)
        require(self.lr > 0, "lr", "must be > 0", self.lr)
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)", self.warmup_ratio)
        require(self.max_grad_norm > 0, "max_grad_norm", "must be > 0", self.max_grad_norm)
        require(self.eval_every is None or self.eval_every >= 1, "eval_every", "must be >= 1", self.eval_every)
        require(self.patience is None or self.patience >= 1, "patience", "must be >= 1", self.patience)
        require(0 <= self.prune_after <= 0.9, "prune_after", "must be in [0, 0.9]", self.prune_after)
        require(1 <= self.prune_stages <= 8, "prune_stages", "must be in [1, 8]", self.prune_stages)
        require(0 <= self.ema < 1, "ema", "must be in [0, 1)", self.ema)
        require(self.dropout is None or 0 <= self.dropout < 1, "dropout", "must be in [0, 1)", self.dropout)
        require(self.assistant is None or self.assistant >= 1, "assistant", "must be >= 1 (layers)", self.assistant)
        require(0 <= self.qat <= 1, "qat", "must be in [0, 1]", self.qat)


@dataclass(frozen=True)
class EvaluateConfig:
    latency: bool = True
    threads: int = 1
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    seq_len: int | None = None
    # causal-lm: generation speed is timed at batch 1 over a prompt of seq_len tokens (default 32)
    # and this many new tokens
    new_tokens: int = 32
    warmup: int = 3
    repeats: int = 10
    # energy (codecarbon) of 1,000 batch-1 predictions (causal-lm: decoded tokens) of student and
    # teacher in the export and distill records, and of every training run
    energy: bool = True
    # speed budgets decide from this machine's recorded timing of the same shape beside the same
    # teacher when there is one (a close call is re-timed before it is recorded), so reruns agree
    reuse_timings: bool = True

    def __post_init__(self) -> None:
        require(self.threads >= 1, "threads", "must be >= 1", self.threads)
        require(all(b >= 1 for b in self.batch_sizes), "batch_sizes", "must all be >= 1", self.batch_sizes)
        require(self.seq_len is None or self.seq_len >= 1, "seq_len", "must be >= 1", self.seq_len)
        require(self.new_tokens >= 2, "new_tokens", "must be >= 2", self.new_tokens)
        require(self.warmup >= 0, "warmup", "must be >= 0", self.warmup)
        require(self.repeats >= 1, "repeats", "must be >= 1", self.repeats)


OBJECTIVES = ("quality", "parameters", "latency", "size", "energy")
SAMPLERS = ("tpe", "nsga2", "gp", "random")  # = search.samplers.SAMPLERS.names() (no optuna import here)


@dataclass(frozen=True)
class PruningConfig:
    """Early stopping of hopeless trials at ``checkpoints`` evenly spaced validation checks (rungs):
    ``median``, below the median of finished trials of similar size (same log2-parameter bucket) at
    the same checkpoint; ``halving``, outside the top ``1 / eta`` of every trial that reached the
    checkpoint, ranked by non-dominated sorting over quality and parameters (``search.early_stop``)."""

    enabled: bool = True
    rule: Literal["median", "halving"] = "median"
    min_trials: int = 5
    bucket_log2_width: float = 1.0  # median
    eta: float = 3.0  # halving: one in eta trials goes on past each rung
    checkpoints: int = 3

    def __post_init__(self) -> None:
        require(self.eta > 1, "eta", "must be > 1", self.eta)
        require(self.min_trials >= 1, "min_trials", "must be >= 1", self.min_trials)
        require(self.bucket_log2_width > 0, "bucket_log2_width", "must be > 0", self.bucket_log2_width)
        require(self.checkpoints >= 1, "checkpoints", "must be >= 1", self.checkpoints)


@dataclass(frozen=True)
class SearchConfig:
    space: str = "default"
    n_trials: int = 12
    timeout: float | None = None
    trial_timeout: float | None = None
    objectives: list[str] = field(default_factory=lambda: ["quality", "parameters"])
    sampler: str = "tpe"
    startup_trials: int = 5
    storage: str | None = None
    study_name: str | None = None
    max_refusals_per_trial: int = 20
    stale_after: float = 600.0  # seconds without a heartbeat before another machine's running trial is failed
    calibration_examples: int = 256  # student.calibration_examples for the proxies (fewer: shorter trials)
    # the name of another study in the same storage (same teacher, data and space): its front's
    # students are this new study's first trials
    warm_start: str | None = None
    pruning: PruningConfig = field(default_factory=PruningConfig)

    def __post_init__(self) -> None:
        require(self.n_trials >= 1, "n_trials", "must be >= 1", self.n_trials)
        require(self.timeout is None or self.timeout > 0, "timeout", "must be > 0", self.timeout)
        require(
            self.trial_timeout is None or self.trial_timeout > 0, "trial_timeout", "must be > 0", self.trial_timeout
        )
        require(self.sampler in SAMPLERS, "sampler", f"must be one of {', '.join(SAMPLERS)}", self.sampler)
        require(self.startup_trials >= 0, "startup_trials", "must be >= 0", self.startup_trials)
        require(self.stale_after > 0, "stale_after", "must be > 0 (seconds)", self.stale_after)
        require(self.calibration_examples >= 1, "calibration_examples", "must be >= 1", self.calibration_examples)
        require(self.max_refusals_per_trial >= 1, "max_refusals_per_trial", "must be >= 1", self.max_refusals_per_trial)
        ok = len(self.objectives) >= 1 and self.objectives[0] == "quality" and set(self.objectives) <= set(OBJECTIVES)
        require(ok, "objectives", f"must start with 'quality' and use only {', '.join(OBJECTIVES)}", self.objectives)
        require(len(set(self.objectives)) == len(self.objectives), "objectives", "must not repeat", self.objectives)


@dataclass(frozen=True)
class BudgetConfig:
    """Hard limits on the student. Parameters means the total count. ``max_parameter_share`` and
    ``min_speedup`` are relative to the teacher (its parameter count; its batch-1 latency measured
    beside each student)."""

    max_parameters: int | None = None
    max_parameter_share: float | None = None
    max_latency_ms: float | None = None
    min_speedup: float | None = None
    max_size_mb: float | None = None
    max_memory_mb: float | None = None
    # where latency and min_speedup are timed, teacher and student alike: pytorch, or the ONNX graph in
    # onnxruntime (onnx), or its dynamic int8 quantisation (onnx-int8); classifiers only
    runtime: Literal["pytorch", "onnx", "onnx-int8"] = "pytorch"
    # the student's energy per prediction as a share of the teacher's, measured together (evaluate.energy)
    max_energy_share: float | None = None

    def __post_init__(self) -> None:
        for key in ("max_parameters", "max_latency_ms", "max_size_mb", "max_memory_mb"):
            v = getattr(self, key)
            require(v is None or v > 0, key, "must be > 0", v)
        share = self.max_parameter_share
        require(share is None or 0 < share <= 1, "max_parameter_share", "must be in (0, 1]", share)
        energy = self.max_energy_share
        require(energy is None or 0 < energy <= 1, "max_energy_share", "must be in (0, 1]", energy)
        speedup = self.min_speedup
        require(speedup is None or speedup >= 1, "min_speedup", "must be >= 1 (times faster than the teacher)", speedup)


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None
    experiment: str = "autodistill"


EXPORT_FORMATS = ("hf", "onnx", "int8", "gguf")


@dataclass(frozen=True)
class ExportConfig(PickRule):
    """What ``autodistill export`` does when its command line does not say: the pick rule (the
    fields of ``PickRule``, each key named as its flag; none set: the knee of the front), the
    formats, the folder and the MLflow model name. Rule flags on the command line replace this
    rule as a whole."""

    retrain: bool = True
    formats: list[str] = field(default_factory=lambda: ["hf"])
    out: str | None = None  # default OUTPUT_DIR/export
    register: str | None = None

    def __post_init__(self) -> None:
        found = self.problem()  # the rule's own checks, naming this section's keys (_term)
        if found is not None:
            raise Invalid(*found)
        for i, f in enumerate(self.formats):
            require(f in EXPORT_FORMATS, f"formats[{i}]", f"must be one of {', '.join(EXPORT_FORMATS)}", f)

    @staticmethod
    def _term(name: str) -> str:
        return name

    def describe(self) -> str:
        """The rule in this section's words, e.g. ``the config's export section (min_speedup: 3)``."""
        given = ", ".join(f"{k}: {v}" for k, v in self.given().items())
        return f"the config's export section ({given})" if given else "the knee of the Pareto front"

    def rule(self) -> PickRule:
        return PickRule(**{f.name: getattr(self, f.name) for f in fields(PickRule)})


@dataclass(frozen=True)
class RunConfig:
    task: str = "sequence-classification"
    output_dir: str = "runs/default"
    seed: int = 0
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        require(self.task in TASKS, "task", f"must be one of {', '.join(TASKS)}", self.task)
        require(bool(self.output_dir.strip()), "output_dir", "must be a folder path", self.output_dir)
        require(self.seed >= 0, "seed", "must be >= 0", self.seed)
        if self.task == "causal-lm" and self.budget.runtime != "pytorch":
            raise Invalid(
                "budget.runtime",
                f"is {self.budget.runtime!r}, but a causal LM's speed is its decoding speed through transformers' "
                "generate, timed in pytorch only (its ONNX graph has no KV cache). Use runtime: pytorch.",
            )
        self._check_targets()
        if self.task == "causal-lm" and self.distill.qat > 0:
            raise Invalid(
                "distill.qat",
                f"is {self.distill.qat:g}, but quantisation-aware distillation prepares a classifier for its "
                "int8 ONNX export, which causal LMs do not have. Use qat: 0.",
            )
        if self.data.unlabeled and (self.distill.augment.ratio == 0 or self.distill.augment.unlabeled_share <= 0):
            raise Invalid(
                "data.unlabeled",
                "lists texts, but distill.augment.ratio or distill.augment.unlabeled_share is 0, so no "
                "step would see them. Set distill.augment.ratio (e.g. 1) or remove data.unlabeled.",
            )

    def _check_targets(self) -> None:
        """Several teachers and a teacher assistant: classifiers only, and no teacher-labelled copies
        (one live teacher labels those; a combined or assistant target has none to run)."""
        given = (("teacher.extra", self.teacher.extra), ("distill.assistant", self.distill.assistant))
        used = [key for key, value in given if value]
        if not used:
            return
        if self.task != "sequence-classification":
            raise Invalid(used[0], f"is set, but it is for sequence-classification only (task is {self.task!r}).")
        if self.distill.augment.ratio:
            raise Invalid(
                "distill.augment.ratio",
                f"is {self.distill.augment.ratio}, but {used[0]} is set: the copies are labelled by one live teacher, "
                "and a combined or assistant target has none. Set distill.augment.ratio: 0 (or leave it unset).",
            )
        if self.data.unlabeled:
            raise Invalid("data.unlabeled", f"lists texts, but {used[0]} is set (the copies need one live teacher).")
