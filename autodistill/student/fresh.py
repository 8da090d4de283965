"""A fresh student of a given shape, for when no transform of the teacher fits the budget.

``init: random`` gives the architecture's own initialisation (the transformers ``_init_weights``
of the stock model for the shape), seeded by ``BuildContext.seed``. ``init: teacher_slices`` starts
from the same model and copies the leading slices of the teacher's matrices: the first ``hidden``
embedding channels, the first ``heads`` heads with the first ``head_dim`` dims of each, the first
``ffn`` neurons, from the chosen teacher layers (default every ``T // layers``-th from the bottom,
as DistilBERT did). The transform replaces the model entirely; only the vocabulary, positions,
token types and labels of the incoming shape carry over.

``born_again`` is ``fresh`` with ``init: random`` at the incoming shape itself (Furlanello et al.
2018, "Born-Again Neural Networks"): a same-shape student trained from scratch on the teacher.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from autodistill.config.schema import require
from autodistill.student.base import BuildContext, NoOptions, StateDict, Transform, register
from autodistill.student.shape import LayerShape, ModelShape

_LAYER_KEY = re.compile(r"\.layer\.(\d+)\.")
# Linear weights whose rows (Q, K, V) or columns (attention output) are grouped by head.
_HEAD_ROWS = re.compile(r"\.attention\.self\.(query|key|value)\.(weight|bias)$")
_HEAD_COLS = re.compile(r"\.attention\.output\.dense\.weight$")


@dataclass(frozen=True)
class FreshOptions:
    layers: int = field(metadata={"help": "number of encoder layers"})
    hidden: int = field(metadata={"help": "hidden size"})
    heads: int = field(metadata={"help": "attention heads per layer (must divide hidden)"})
    ffn: int = field(metadata={"help": "intermediate (FFN) size"})
    init: Literal["random", "teacher_slices"] = field(default="random", metadata={"help": "how to initialise"})
    teacher_layers: list[int] | None = field(
        default=None, metadata={"help": "teacher layer copied into each student layer (teacher_slices only)"}
    )

    def __post_init__(self) -> None:
        for key in ("layers", "hidden", "heads", "ffn"):
            require(getattr(self, key) > 0, key, "must be > 0", getattr(self, key))
        require(self.hidden % self.heads == 0, "heads", f"must divide hidden ({self.hidden})", self.heads)
        if self.teacher_layers is not None:
            require(
                self.init == "teacher_slices",
                "teacher_layers",
                "is only used with init: teacher_slices",
                self.teacher_layers,
            )
            require(
                len(self.teacher_layers) == self.layers,
                "teacher_layers",
                f"must list one teacher layer per student layer ({self.layers})",
                self.teacher_layers,
            )


def default_teacher_layers(teacher_layers: int, layers: int) -> list[int]:
    """Evenly spaced from the bottom: 6 -> 3 gives [0, 2, 4]."""
    return [i * teacher_layers // layers for i in range(layers)]


def _fresh_shape(shape: ModelShape, layers: int, hidden: int, heads: int, ffn: int) -> ModelShape:
    layer = LayerShape(heads=heads, head_dim=hidden // heads, ffn=ffn)
    return ModelShape(
        family=shape.family,
        vocab=shape.vocab,
        hidden=hidden,
        max_positions=shape.max_positions,
        type_vocab=shape.type_vocab,
        num_labels=shape.num_labels,
        layers=(layer,) * layers,
        embedding_rank=None,
        pooler=shape.pooler,
    )


def _check_slices(shape: ModelShape, options: FreshOptions) -> list[int]:
    """Teacher layers to copy; every student size must fit inside the teacher's. Raises ``Invalid``
    (build.py names the key as ``student.transforms[i].<key>``)."""
    mode = "with init: teacher_slices"
    chosen = options.teacher_layers
    if chosen is None:
        n = shape.num_layers
        require(options.layers <= n, "layers", f"must be <= the teacher's {n} layers {mode}", options.layers)
        chosen = default_teacher_layers(shape.num_layers, options.layers)
    ok = all(0 <= i < shape.num_layers for i in chosen)
    require(ok, "teacher_layers", f"must hold layer indices in [0, {shape.num_layers})", list(chosen))
    factored = shape.embedding_rank is not None or any(shape.layers[i].ranks for i in chosen)
    require(not factored, "init", "cannot be 'teacher_slices' after low-rank factors; put 'fresh' first", options.init)
    head_dim = options.hidden // options.heads
    require(
        options.hidden <= shape.hidden, "hidden", f"must be <= {shape.hidden} (the teacher's) {mode}", options.hidden
    )
    for i in chosen:
        t = shape.layers[i]
        require(options.heads <= t.heads, "heads", f"must be <= {t.heads} (teacher layer {i}) {mode}", options.heads)
        require(options.ffn <= t.ffn, "ffn", f"must be <= {t.ffn} (teacher layer {i}) {mode}", options.ffn)
        require(
            head_dim <= t.head_dim,
            "hidden",
            f"must be <= heads * {t.head_dim} (the teacher's head size) {mode}",
            options.hidden,
        )
    return [int(i) for i in chosen]


@register
class Fresh(Transform):
    name = "fresh"
    Options = FreshOptions
    example_options: ClassVar[dict] = {"layers": 1, "hidden": 16, "heads": 2, "ffn": 32, "init": "teacher_slices"}

    def plan(self, shape: ModelShape, options: FreshOptions, ctx: BuildContext) -> ModelShape:
        if options.init == "teacher_slices":
            _check_slices(shape, options)
        return _fresh_shape(shape, options.layers, options.hidden, options.heads, options.ffn)

    def resolve(self, model: Any, shape: ModelShape, options: FreshOptions, ctx: BuildContext) -> dict[str, Any]:
        chosen = _check_slices(shape, options) if options.init == "teacher_slices" else None
        config = getattr(model, "config", None)
        return {
            "init": options.init,
            "seed": int(ctx.seed),
            "initializer_range": float(getattr(config, "initializer_range", 0.02)),
            "layers": options.layers,
            "hidden": options.hidden,
            "heads": options.heads,
            "ffn": options.ffn,
            "teacher_layers": chosen,
        }

    def apply(self, state: StateDict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[StateDict, ModelShape]:
        new_shape = _fresh_shape(shape, resolved["layers"], resolved["hidden"], resolved["heads"], resolved["ffn"])
        new_state = random_state(new_shape, resolved["seed"], resolved["initializer_range"])
        if resolved["init"] == "teacher_slices":
            new_state = _slice_teacher(state, shape, new_shape, new_state, resolved["teacher_layers"])
        return new_state, new_shape


@register
class BornAgain(Fresh):
    """A freshly initialised model of the incoming shape (the teacher's, when first): ``fresh``
    with ``init: random`` and the incoming sizes, so its record and rebuild are ``fresh``'s."""

    name = "born_again"
    Options = NoOptions
    example_options: ClassVar[dict] = {}

    def plan(self, shape: ModelShape, options: NoOptions, ctx: BuildContext) -> ModelShape:
        return super().plan(shape, same_size(shape), ctx)

    def resolve(self, model: Any, shape: ModelShape, options: NoOptions, ctx: BuildContext) -> dict[str, Any]:
        return super().resolve(model, shape, same_size(shape), ctx)


def same_size(shape: ModelShape) -> FreshOptions:
    """``fresh``'s options that rebuild ``shape`` itself; raises ``Invalid`` for a shape a stock
    config cannot describe (layers that differ, low-rank factors, head sizes not summing to hidden)."""
    layer = shape.layers[0]
    fits = _fresh_shape(shape, shape.num_layers, shape.hidden, layer.heads, layer.ffn) == shape
    rule = "must come before transforms that make the layers differ or factor them (a stock model must fit the shape)"
    require(fits, "name", rule, "born_again")
    return FreshOptions(layers=shape.num_layers, hidden=shape.hidden, heads=layer.heads, ffn=layer.ffn)


def random_state(shape: ModelShape, seed: int, initializer_range: float = 0.02) -> StateDict:
    """The state dict of the stock model for ``shape`` with its own initialisation, seeded."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    layer = shape.layers[0]
    config = AutoConfig.for_model(
        shape.family,
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=layer.heads,
        intermediate_size=layer.ffn,
        max_position_embeddings=shape.max_positions,
        type_vocab_size=shape.type_vocab,
        num_labels=shape.num_labels,
        initializer_range=initializer_range,
    )
    with torch.random.fork_rng(devices=[]):  # seed without disturbing the caller's random stream
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    count = sum(p.numel() for p in model.parameters())
    if count != shape.num_parameters():
        raise AssertionError(
            f"A fresh {shape.family} model has {count} parameters; the shape predicts {shape.num_parameters()}."
        )
    return state


def _slice_teacher(
    teacher: StateDict, t_shape: ModelShape, shape: ModelShape, state: StateDict, chosen: list[int]
) -> StateDict:
    out = {}
    layer = shape.layers[0]
    for key, target in state.items():
        match = _LAYER_KEY.search(key)
        source_key, t_layer = key, None
        if match:
            t_layer = t_shape.layers[chosen[int(match.group(1))]]
            source_key = _LAYER_KEY.sub(f".layer.{chosen[int(match.group(1))]}.", key, count=1)
        if source_key not in teacher:
            raise ValueError(f"The teacher state has no {source_key!r} to slice {key!r} from.")
        source = teacher[source_key]
        if t_layer is not None and _HEAD_ROWS.search(key):
            # rows grouped [heads, head_dim]: keep the first heads and the first dims of each
            grouped = source.reshape(t_layer.heads, t_layer.head_dim, *source.shape[1:])
            index = (slice(0, layer.heads), slice(0, layer.head_dim)) + tuple(slice(0, n) for n in target.shape[1:])
            sliced = grouped[index].reshape(target.shape)
        elif t_layer is not None and _HEAD_COLS.search(key):
            grouped = source.reshape(source.shape[0], t_layer.heads, t_layer.head_dim)
            sliced = grouped[: target.shape[0], : layer.heads, : layer.head_dim].reshape(target.shape)
        else:
            sliced = source[tuple(slice(0, n) for n in target.shape)]
        if sliced.shape != target.shape:
            raise ValueError(f"Cannot slice {tuple(source.shape)} of {source_key!r} to {tuple(target.shape)}.")
        out[key] = sliced.detach().clone().to(target.dtype)
    return out
