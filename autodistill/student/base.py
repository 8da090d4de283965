"""The transform extension point: one small class per way of making the teacher smaller.

A transform works in three steps, so that the search can price a student before building it
and a built student can be rebuilt exactly without recomputing data-dependent choices:

1. ``plan(shape, options, ctx) -> shape``: the resulting shape, no weights touched.
2. ``resolve(model, shape, options, ctx) -> dict``: the data-dependent choices (kept layer,
   head, neuron, channel or token indices; ranks) as a JSON-able record. ``model`` is the
   current intermediate student (built from the state so far), used for importance scores.
3. ``apply(state, shape, resolved) -> (state, shape)``: a pure function of the state dict and
   the record. ``build.py`` composes the steps and builds the final model from shape + state.

Transforms that act on training rather than on weights (LoRA) override ``wrap`` / ``unwrap``.

Checks on options that need the shape (a layer index out of range, a rank too large) raise
``autodistill.config.schema.Invalid(key, message)`` from ``plan``; ``build.py`` turns that into a
ConfigError naming ``student.transforms[i].<key>``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from autodistill.registry import Registry
from autodistill.student.shape import ModelShape

StateDict = dict[str, Any]  # name -> torch.Tensor, HF state-dict key names


@dataclass
class BuildContext:
    """What data-dependent transforms may use. Everything is optional; a transform that needs a
    missing piece raises a clear error.

    calibration: a few tokenized training batches (dicts of tensors with ``input_ids``,
        ``attention_mask``, ``labels`` and, where available, ``teacher_logits``).
    token_counts: how often each teacher token id occurs in the training data (numpy int64).
    special_token_ids: ids that must always be kept (pad, unk, cls, sep, mask).
    unk_token_id: the teacher tokenizer's unknown-token id (vocabulary pruning maps dropped ids to it).
    """

    calibration: list[dict[str, Any]] | None = None
    token_counts: Any = None
    special_token_ids: tuple[int, ...] = ()
    unk_token_id: int | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    """For transforms that take no options."""


class Transform(ABC):
    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    # does resolve() need the intermediate model built? (importance scores do; index rules don't)
    needs_model: ClassVar[bool] = False
    # does it shrink inside the layers (heads, FFN, hidden, low-rank)? With ``distill.prune_after``
    # such transforms, and all after the first of them, apply to the student after a warm-up
    within_layers: ClassVar[bool] = False
    # a small valid options dict for the tiny test BERT (hidden 32, 4 heads, 4 layers, ffn 64,
    # vocab 99): the contract tests build every registered transform with it
    example_options: ClassVar[dict[str, Any]] = {}

    def wants_model(self, options: Any) -> bool:
        """Does ``resolve`` need the intermediate model for these options? Default: ``needs_model``."""
        return self.needs_model

    def plan_exactness(self, options: Any) -> Literal["exact", "count", "bound"]:
        """How far ``plan`` can be trusted before data is seen. "exact": the shape is what
        ``apply`` produces. "count": the parameter count is exact but the per-layer split is
        data-dependent (a global pruning ratio). "bound": the count is an upper bound (a rank
        chosen by an energy ratio). A stock architecture can only be promised for "exact"."""
        return "exact"

    @abstractmethod
    def plan(self, shape: ModelShape, options: Any, ctx: BuildContext) -> ModelShape: ...

    @abstractmethod
    def resolve(self, model: Any, shape: ModelShape, options: Any, ctx: BuildContext) -> dict[str, Any]: ...

    @abstractmethod
    def apply(self, state: StateDict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[StateDict, ModelShape]: ...

    def stage_options(self, start: ModelShape, now: ModelShape, options: Any, remaining: int) -> Any | None:
        """``distill.prune_stages``: the options for one stage of a gradual prune, which take ``now``
        ``1 / remaining`` of the way (geometrically) to where ``options`` take ``start``; with
        ``remaining == 1`` exactly there. None (the default): the transform applies whole, with its
        own options, at the last stage."""
        return None

    def wrap(self, model: Any, resolved: dict[str, Any]) -> Any:
        """Prepare the built model for training (e.g. add LoRA adapters). Default: unchanged."""
        return model

    def unwrap(self, model: Any, resolved: dict[str, Any]) -> Any:
        """Undo ``wrap`` for saving (e.g. merge adapters). Default: unchanged."""
        return model

    def token_id_map(self, resolved: dict[str, Any]) -> Any:
        """Old (teacher) token id -> new id, as a 1-D integer array, when the transform changes the
        vocabulary; None otherwise. The training loop remaps teacher-tokenized batches with it."""
        return None

    def remap_tokenizer(self, tokenizer: Any, resolved: dict[str, Any]) -> Any:
        """The tokenizer to save with the student. Default: unchanged."""
        return tokenizer


TRANSFORMS: Registry[type[Transform]] = Registry("student transform")


def register(cls: type[Transform]) -> type[Transform]:
    """Class decorator: ``@register`` on a Transform subclass with a ``name``."""
    return TRANSFORMS.register(cls.name)(cls)
