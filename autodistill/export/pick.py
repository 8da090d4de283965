"""Pick one student from the study by a rule the user gives.

Records are the plain dicts of ``search.front.record`` (number, objectives, metrics, ...), one per
complete, trained, feasible trial. Rules:

- caps (``max_params``, ``max_latency_ms`` at batch 1, ``max_size_mb``, ``min_speedup``: batch-1
  latency at most 1/X of the teacher's, both measured in the search's process moments apart, so
  a shared machine's drift cancels) alone: the best validation quality among the trials under
  every cap;
- a quality floor (``min_quality``, or ``min_relative_quality`` times the teacher's validation
  quality), with or without caps: the smallest student (fewest parameters) that meets it all;
- ``trial``: that trial, alone;
- no rule: the knee of the front (``search.pareto.knee``).

Caps are applied to every feasible trial, not just the front: with an objective as the cap the
answer is on the front anyway, and with a metric that is not an objective (latency when the study
traded quality against parameters) a dominated trial can be the best one under the cap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autodistill.errors import PickError
from autodistill.search.pareto import knee, non_dominated
from autodistill.specs import PickRule, flag_of

__all__ = ["PickError", "PickRule", "close_calls", "knee_of", "pick", "pick_candidates"]


def parameters(r: dict[str, Any]) -> float:
    return float(r["metrics"].get("parameters", r["objectives"].get("parameters", np.inf)))


def quality(r: dict[str, Any]) -> float:
    return float(r["objectives"]["quality"])


def latency_ms(r: dict[str, Any]) -> float:
    return float(r["metrics"].get("latency_ms_b1", np.inf))


def speedup(r: dict[str, Any]) -> float:
    """Teacher batch-1 latency over the student's, as the search measured them (0 when unknown)."""
    ratio = r["metrics"].get("latency")
    return 1.0 / float(ratio) if ratio else 0.0


def size_mb(r: dict[str, Any]) -> float:
    return float(r["metrics"].get("size", r["objectives"].get("size", np.inf)))


def _violations(r: dict[str, Any], rule: PickRule, floor: float | None) -> dict[str, float]:
    """Relative amount by which a record breaks each limit (0 where it holds)."""
    out = {}
    for name, value in (("max_params", parameters(r)), ("max_latency_ms", latency_ms(r)), ("max_size_mb", size_mb(r))):
        limit = getattr(rule, name)
        if limit is not None:
            out[flag_of(name)] = max(0.0, value / limit - 1.0)
    if rule.min_speedup is not None:
        out[flag_of("min_speedup")] = max(0.0, 1.0 - speedup(r) / rule.min_speedup)
    if floor is not None:
        out["quality floor"] = max(0.0, (floor - quality(r)) / max(floor, 1e-12))
    return out


def quality_floor(rule: PickRule, teacher_quality: float | None) -> float | None:
    floors = []
    if rule.min_quality is not None:
        floors.append(rule.min_quality)
    if rule.min_relative_quality is not None:
        if teacher_quality is None:
            raise PickError(
                "The '--min-relative-quality' option needs the teacher's validation quality, which is not known here."
            )
        floors.append(rule.min_relative_quality * teacher_quality)
    return max(floors) if floors else None


def knee_of(records: list[dict[str, Any]], objectives: list[str]) -> dict[str, Any]:
    """The knee of the front the records form (quality against the study's second objective)."""
    second = objectives[1] if len(objectives) > 1 else "parameters"
    values = np.array([[quality(r), r["objectives"].get(second, parameters(r))] for r in records], dtype=float)
    front = non_dominated(values, [True, False])
    return records[int(front[knee(values[front], [True, False])])]


def pick(
    records: list[dict[str, Any]], rule: PickRule, objectives: list[str], teacher_quality: float | None = None
) -> dict[str, Any]:
    """The record the rule picks. Raises PickError listing the closest trials when none fits."""
    return pick_candidates(records, rule, objectives, teacher_quality)[0]


def pick_candidates(
    records: list[dict[str, Any]], rule: PickRule, objectives: list[str], teacher_quality: float | None = None
) -> list[dict[str, Any]]:
    """The rule's pick first, then (``rule.candidates`` > 1) the next best trials under its limits
    by validation quality, up to ``rule.candidates`` in all."""
    if not records:
        raise PickError("The study has no finished feasible trial to pick from. Run `autodistill search CONFIG` first.")
    if rule.trial is not None:
        found = [r for r in records if r["number"] == rule.trial]
        if not found:
            have = ", ".join(str(r["number"]) for r in sorted(records, key=lambda r: r["number"]))
            raise PickError(
                f"The '--trial' option names trial {rule.trial}, which is not a finished feasible trained trial. "
                f"Choose one of: {have}."
            )
        return found[:1]
    floor = quality_floor(rule, teacher_quality)
    if floor is None and not rule.limited:
        return [knee_of(records, objectives)]
    ok = [r for r in records if not any(_violations(r, rule, floor).values())]
    if not ok:
        raise PickError(
            f"No trial satisfies {rule.describe()}"
            + (f" (quality floor {floor:.4f})" if floor is not None else "")
            + ". Closest trials:\n"
            + closest_table(records, rule, floor)
        )
    if floor is not None:  # the smallest that meets the floor; ties to the better one
        return [min(ok, key=lambda r: (parameters(r), -quality(r)))]
    return sorted(ok, key=lambda r: (-quality(r), parameters(r)))[: rule.candidates]


def close_calls(
    records: list[dict[str, Any]], rule: PickRule, chosen: dict[str, Any], margin: float
) -> list[dict[str, Any]]:
    """The other trials the rule could have picked whose validation quality lies within ``margin``
    of the pick's, best first: what the validation split cannot tell apart from it. Only for rules
    that pick on quality (caps, or the knee with no rule); a quality floor picks on size, and
    ``trial`` names its pick."""
    if rule.trial is not None or rule.min_quality is not None or rule.min_relative_quality is not None:
        return []
    under = [r for r in records if not any(_violations(r, rule, None).values())] if rule.limited else records
    close = [r for r in under if r["number"] != chosen["number"] and quality(r) >= quality(chosen) - margin]
    return sorted(close, key=lambda r: (-quality(r), r["number"]))


def closest(records: list[dict[str, Any]], rule: PickRule, floor: float | None, n: int = 3) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (sum(_violations(r, rule, floor).values()), -quality(r)))[:n]


def closest_table(records: list[dict[str, Any]], rule: PickRule, floor: float | None, n: int = 3) -> str:
    rows = []
    for r in closest(records, rule, floor, n):
        v = {k: f"{100 * x:.1f}%" for k, x in _violations(r, rule, floor).items() if x > 0}
        lat = latency_ms(r)
        rows.append(
            f"  trial {r['number']}: quality {quality(r):.4f}, parameters {int(parameters(r)):,}, "
            f"size {size_mb(r):.2f} MB"
            + (f", latency {lat:.2f} ms" if np.isfinite(lat) else "")
            + (f" ({speedup(r):.2f}x the teacher)" if speedup(r) else "")
            + (f" (over by {', '.join(f'{k} {x}' for k, x in v.items())})" if v else "")
        )
    return "\n".join(rows)
