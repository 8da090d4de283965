"""Which teacher layer each student layer learns from.

Indices follow the HF ``hidden_states`` layout (0 = embeddings, i = output of layer i). A map
covers the student's transformer layers 1..n_s; losses that also want the embedding output
(``include_embeddings``) add the pair (0, 0) themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from autodistill.errors import ConfigError

KEY = "distill.loss.layer_map"
RULES = ("uniform", "last")


def resolve_layer_map(rule: str | Sequence[int], n_student_layers: int, n_teacher_layers: int) -> list[tuple[int, int]]:
    """``[(student_hidden_idx, teacher_hidden_idx), ...]`` for a rule or an explicit list.

    - ``"uniform"`` (TinyBERT, Jiao et al. 2020): student layer i <- teacher layer i * n_t / n_s,
      rounded half up, for i = 1..n_s; the last student layer always meets the last teacher layer.
    - ``"last"``: only the last student layer <- the last teacher layer (MiniLM style).
    - a list of n_s teacher hidden indices in [1, n_t], one per student layer, in layer order.
    """
    if n_student_layers < 1 or n_teacher_layers < 1:
        raise ConfigError(
            f"The {KEY!r} parameter needs at least one student and one teacher layer. "
            f"Got {n_student_layers} student and {n_teacher_layers} teacher layers instead."
        )
    n_s, n_t = n_student_layers, n_teacher_layers
    if isinstance(rule, str):
        if rule == "uniform":
            # integer form of round(i * n_t / n_s) with halves rounded up; never below layer 1
            return [(i, max(1, (2 * i * n_t + n_s) // (2 * n_s))) for i in range(1, n_s + 1)]
        if rule == "last":
            return [(n_s, n_t)]
        raise ConfigError(
            f"The {KEY!r} parameter must be one of {', '.join(map(repr, RULES))} or a list of "
            f"{n_s} teacher layer indices in [1, {n_t}]. Got {rule!r} instead."
        )
    items = list(rule) if isinstance(rule, (list, tuple)) else None
    if items is None or not all(isinstance(t, int) and not isinstance(t, bool) for t in items):
        raise ConfigError(
            f"The {KEY!r} parameter must be one of {', '.join(map(repr, RULES))} or a list of "
            f"integers. Got {rule!r} instead."
        )
    if len(items) != n_s:
        raise ConfigError(
            f"The {KEY!r} parameter must list one teacher layer per student layer ({n_s} entries). "
            f"Got {len(items)} entries instead: {items!r}."
        )
    bad = [t for t in items if not 1 <= t <= n_t]
    if bad:
        raise ConfigError(
            f"The {KEY!r} parameter entries must be teacher hidden-state indices in [1, {n_t}] "
            f"(i = output of teacher layer i). Got {bad[0]!r} instead."
        )
    return [(i + 1, t) for i, t in enumerate(items)]
