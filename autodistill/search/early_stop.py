"""Early stopping of proxy trials at their validation checkpoints: one rule object per kind.

``MedianInBucket`` (the default): a trial below the median of finished trials of its size at the
same checkpoint stops. Optuna's ``MedianPruner`` compares a trial with every earlier trial; here
students of very different sizes share a study, and a small student's early validation is
naturally below a large one's, so the median is taken only over finished trials whose parameter
count lies in the same log2 bucket (``search.pruning.bucket_log2_width``).

``Halving``: successive halving with asynchronous promotion (ASHA, Li et al. 2020): each checkpoint
is a rung, and a trial goes on past it only while it ranks in the top ``1 / eta`` of every trial
that reached that rung (stopped or not). Ranked by non-dominated sorting over (validation quality,
parameters), then by quality, not by quality alone, so a small student is not promoted away by
larger ones it never competes with on the front. Optuna's ``SuccessiveHalvingPruner`` ranks by one
value; that is why both rules are ours.

The search stores every rung in the trial (``checkpoints``: validation by step), so a resumed study
keeps its rungs and a stopped trial's last rung says how far it got.

What the sampler learns from a stopped trial: it is told PRUNED, with no objective values (a
multi-objective study in Optuna takes no intermediate values, and a rung's validation is not the
final one, so it must not join the front). Optuna's multi-objective TPE fills its "below"
(promising) share, about the best tenth of the trials, with finished trials first and PRUNED ones
only when too few finished; otherwise a PRUNED trial is one of its "above" trials, as a finished
trial outside the best tenth is. The rules stop only trials in the bottom half (median) or the
bottom ``1 - 1 / eta`` (halving) of their rung, so the sampler reads a stopped trial no worse than
its rung ranked it, and never as infeasible (those are refused students, told through ``budget``
constraints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autodistill.config.run import PruningConfig
from autodistill.search.pareto import non_dominated


@dataclass(frozen=True)
class Peer:
    """Another trial at the same checkpoint: its validation there, its size, its size bucket."""

    quality: float
    parameters: float
    bucket: int | None = None


@dataclass(frozen=True)
class MedianInBucket:
    enabled: bool = True
    min_trials: int = 5
    bucket_log2_width: float = 1.0
    counts_stopped = False  # peers are finished trials only

    @classmethod
    def from_config(cls, pruning: PruningConfig) -> MedianInBucket:
        return cls(pruning.enabled, pruning.min_trials, pruning.bucket_log2_width)

    def bucket(self, parameters: float) -> int:
        """The size bucket of a student: floor(log2(parameters) / width)."""
        return math.floor(math.log2(max(2, parameters)) / self.bucket_log2_width)

    def reason_to_stop(self, step: int, quality: float, parameters: float, peers: list[Peer]) -> str | None:
        """Why a trial at ``quality`` after ``step`` steps should stop, given the finished trials'
        validation at the same step (only those of its size bucket count); None to go on."""
        mine = self.bucket(parameters)
        same = [p.quality for p in peers if p.bucket == mine]
        if not self.enabled or len(same) < self.min_trials:
            return None
        median = float(np.median(same))
        if quality >= median:
            return None
        return (
            f"validation {quality:.4f} below the median {median:.4f} of {len(same)} similar-size trials at step {step}"
        )


@dataclass(frozen=True)
class Halving:
    enabled: bool = True
    min_trials: int = 5
    eta: float = 3.0
    counts_stopped = True  # ASHA: every trial that reached the rung, stopped there or not

    @classmethod
    def from_config(cls, pruning: PruningConfig) -> Halving:
        return cls(pruning.enabled, pruning.min_trials, pruning.eta)

    def bucket(self, parameters: float) -> int | None:
        return None  # ranks over every size at once

    def reason_to_stop(self, step: int, quality: float, parameters: float, peers: list[Peer]) -> str | None:
        """Why a trial at this rung is not promoted: outside the top ``1 / eta`` of the trials that
        reached the rung, itself included; None to go on. Fewer than ``min_trials`` peers: go on."""
        if not self.enabled or len(peers) < self.min_trials:
            return None
        points = [(quality, parameters)] + [(p.quality, p.parameters) for p in peers]
        order = promotion_order(points)
        keep = max(1, math.floor(len(points) / self.eta))
        place = order.index(0)  # where this trial (point 0) stands
        if place < keep:
            return None
        return (
            f"rank {place + 1} of {len(points)} at step {step} (validation {quality:.4f}, "
            f"{parameters:,.0f} parameters); only the top {keep} (1/{self.eta:g}) go on"
        )


def promotion_order(points: list[tuple[float, float]]) -> list[int]:
    """Indices of ``(quality, parameters)`` points, best first: by non-dominated front (higher
    quality and fewer parameters are better), then by quality within a front, then by index."""
    fronts = front_ranks(points)
    return sorted(range(len(points)), key=lambda i: (fronts[i], -points[i][0], i))


def front_ranks(points: list[tuple[float, float]]) -> list[int]:
    """Each point's non-dominated front (0 the first), maximising quality and minimising parameters:
    the front of the points left once the earlier fronts are taken out (``pareto.non_dominated``)."""
    values = np.asarray(points, dtype=float).reshape(-1, 2)
    ranks = [-1] * len(points)
    left, front = np.arange(len(points)), 0
    while len(left):
        layer = left[non_dominated(values[left], (True, False))]
        for i in layer:
            ranks[int(i)] = front
        left = np.setdiff1d(left, layer)
        front += 1
    return ranks


def stop_rule(pruning: PruningConfig) -> MedianInBucket | Halving:
    """The rule ``search.pruning.rule`` names."""
    return Halving.from_config(pruning) if pruning.rule == "halving" else MedianInBucket.from_config(pruning)
