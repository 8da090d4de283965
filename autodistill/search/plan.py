"""``autodistill plan``: what a search would do, without searching."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from autodistill.config.run import RunConfig
from autodistill.fingerprint import hash_json, home
from autodistill.search.objective import proxy_plan
from autodistill.search.space import SearchSpace, SpaceFile
from autodistill.search.study import shown_url


def plan(cfg: RunConfig, n_points: int = 300, progress: bool = True, probe_steps: int = 5) -> dict[str, Any]:
    """Space size, cache size now and at most after the search, the students' parameter range,
    budget feasibility, and the cost of a trial from a timed probe of ``probe_steps`` steps of the
    largest admissible sampled student (0: no probe)."""
    from autodistill.search.run import prepared_gate, setup

    s = setup(cfg)
    task, prep, gate = prepared_gate(s, progress)
    sizes, refused, errors, samples, largest = [], 0, 0, [], None
    for sample, n in gate.scan(n_points):
        if n is None:
            errors += 1
            continue
        sizes.append(n)
        refused += gate.violation(n) > 0
        samples.append(sample)
        if gate.violation(n) <= 0 and (largest is None or n > largest[0]):
            largest = (n, sample)
    sizes_arr = np.array(sizes) if sizes else np.array([0])
    out = {
        "space": s.space.name,
        "space_size": s.space.size(),
        "storage": shown_url(s.storage),
        "study_name": s.study_name,
        "proxy_steps": s.space.spec.proxy_steps,
        "proxy_examples": s.space.spec.proxy_examples,
        "n_trials": cfg.search.n_trials,
        "teacher_parameters": gate.teacher_parameters,
        **task.cache_plan(prep, samples),
        "sampled_points": n_points,
        "predicted_parameters_min": int(sizes_arr.min()),
        "predicted_parameters_max": int(sizes_arr.max()),
        "predicted_refused_fraction": refused / max(1, len(sizes)),
        "invalid_points": errors,
        "budget_feasible": bool(sizes) and refused < len(sizes),
        "proxy_fidelity": fidelity_record(s.space, prep.teacher.fingerprint),
    }
    if probe_steps > 0 and largest is not None:
        out.update(trial_cost(cfg, s.space.spec, task, prep, largest[1], probe_steps))
        out["estimated_search_seconds_max"] = round(out["trial_seconds_max"] * cfg.search.n_trials)
    return out


def fidelity_path(space: SearchSpace, teacher_fingerprint: str) -> Path:
    """Where benchmarks/proxy_fidelity.py records how well this space's proxies rank students
    trained by this teacher: a measurement holds only for the space and teacher it was made on."""
    key = f"{hash_json(space.fingerprint_dict())[:16]}-{teacher_fingerprint[:16]}"
    return home() / "fidelity" / f"{key}.json"


def fidelity_record(space: SearchSpace, teacher_fingerprint: str) -> dict[str, Any] | None:
    """The last recorded proxy fidelity of ``space`` with this teacher, or None when unmeasured
    (or unreadable: a broken record is reported as not measured rather than stopping the plan)."""
    path = fidelity_path(space, teacher_fingerprint)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def trial_cost(cfg: RunConfig, space: SpaceFile, task: Any, prep: Any, sample: Any, probe_steps: int) -> dict[str, Any]:
    """Seconds one trial of this student takes: a timed probe of a few proxy steps (with the task's
    ``probe_loss``, which never fills the teacher-output cache), scaled to the proxy length, plus the
    build and validation time the probe also paid. Weights are thrown away."""
    train = {k: v for k, v in sample.train.items() if k != "lr"}
    spec, indices = proxy_plan(task, prep, cfg, probe_steps, space.proxy_examples, train)
    spec = replace(spec, eval_every=None)
    start = time.perf_counter()
    run = task.distill(
        prep,
        sample.student,
        task.probe_loss(sample.loss),
        spec=spec,
        indices=indices,
        evaluate=None,
        keep_best=False,
        augment=cfg.distill.augment.in_search,
        calibration_examples=cfg.search.calibration_examples,
    )
    total = time.perf_counter() - start
    per_step = run.train.seconds / probe_steps
    return {
        "probe_steps": probe_steps,
        "step_seconds": round(per_step, 4),
        "trial_seconds_max": round(total - run.train.seconds + per_step * space.proxy_steps, 1),
    }
