"""Export benchmark (run by hand, not in CI): what the picked student buys, side by side in one run.

    python benchmarks/export_speed.py configs/demo.yaml [--n-trials 12] [--seeds 3] [--jobs 2] [--out DIR]

1. Runs (or continues) the config's search until it has ``--n-trials`` trained trials. Unless the
   config sets a budget, the search gets the pick's limits as ``budget.max_parameter_share`` and
   ``budget.min_speedup`` (``--no-search-budget``: search unconstrained), so that its trials learn
   where the feasible students are instead of spending proxies on students the pick cannot take.
2. Picks the best student under 40% of the teacher's parameters and at least ``--min-speedup``
   (3) times faster than the teacher at batch 1 as the search measured them, retrains it at full
   length and exports it with ONNX and int8
   (``autodistill export --max-params ... --min-speedup 3 --formats onnx,int8``).
3. Prints: that student against the teacher, batch-1 CPU latency (target >= 3x faster); int8
   against fp32 ONNX at batch 32 with the test accuracy of each (target >= 1.5x faster, within 1
   point); and that student against DistilBERT's recipe (``depth`` 3 layers ``uniform``, CE + KL
   with alpha 0.5 and T = 2, the same final training length), test accuracy and parameters, the
   median of ``--seeds`` seeds (target: equal or better accuracy at fewer parameters). The recipe
   trains without ``distill.augment`` and ``distill.ema`` (not part of it) for the same number of
   steps; the table says how many augmented copies per example each side saw and whether its
   weights were averaged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

RECIPE_LOSS = {
    "terms": [{"name": "ce", "weight": 0.5}, {"name": "kl", "weight": 0.5}],
    "temperature": 2.0,
    "layer_map": "uniform",
    "weighting": {"name": "static"},
}


def recipe_record(prep) -> dict:
    """DistilBERT's recipe as a trial-like record: a 3-layer uniform depth student, CE + KL."""
    from autodistill.specs import Step, StudentSpec
    from autodistill.student.build import build_student

    spec = StudentSpec((Step("depth", {"layers": 3, "choice": "uniform"}),))
    built = build_student(prep.teacher_model(), spec, prep.build_context())
    return {
        "number": -1,
        "resolved": built.resolved,
        "loss": RECIPE_LOSS,
        "train": {},
        "objectives": {"quality": float("nan")},
    }


def _final(prep, record: dict, proxy: dict, seed: int) -> dict:
    """One seed's final training of ``record``: test quality, steps, parameters."""
    from autodistill.export.retrain import final_student

    run = final_student(prep, record, proxy, retrain=True, seed=seed)
    params = sum(p.numel() for p in run.run.build.export_model().parameters())
    return {"quality": run.test["quality"], "steps": run.spec.steps, "parameters": params}


def _worker(config: str, overrides: list[str], record: dict, proxy: dict, seed: int) -> dict:
    """``_final`` in a worker process of one thread (it prepares the data and teacher itself)."""
    import torch

    from autodistill.config import load_config
    from autodistill.tasks.sequence_classification.prepare import prepare

    torch.set_num_threads(1)
    return _final(prepare(load_config(config, overrides), progress=False), record, proxy, seed)


# the recipe's final training as a practitioner runs it: no copies, no weight average
PLAIN = ["distill.augment.ratio=0", "data.unlabeled=[]", "distill.ema=0"]


def plain(prep):
    """``prep`` with ``distill.augment``, ``data.unlabeled`` and ``distill.ema`` off (shares the data,
    teacher and cache)."""
    from dataclasses import replace

    from autodistill.config.run import AugmentConfig

    cfg = prep.cfg
    data = replace(cfg.data, unlabeled=[])
    distill = replace(cfg.distill, augment=AugmentConfig(), ema=0.0)
    return replace(prep, cfg=replace(cfg, data=data, distill=distill))


def final_runs(args: argparse.Namespace, prep, jobs: list[tuple[dict, int, bool]], proxy: dict) -> list[dict]:
    """``_final`` for each (record, seed, augmented): in this process with ``prep``, or in ``--jobs``
    workers; ``augmented=False`` turns ``distill.augment`` and ``distill.ema`` off for that run."""
    if args.jobs == 1:
        return [_final(prep if aug else plain(prep), rec, proxy, seed) for rec, seed, aug in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [
            pool.submit(_worker, args.config, args.set + ([] if aug else PLAIN), rec, proxy, seed)
            for rec, seed, aug in jobs
        ]
        return [f.result() for f in futures]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument(
        "--n-trials", type=int, default=None, help="trained trials the study needs (default: search.n_trials)"
    )
    ap.add_argument("--seeds", type=int, default=3, help="seeds for the recipe comparison (median)")
    ap.add_argument("--max-fraction", type=float, default=0.4, help="parameter cap as a fraction of the teacher's")
    ap.add_argument("--min-speedup", type=float, default=3.0, help="batch-1 speedup over the teacher the pick needs")
    ap.add_argument("--candidates", type=int, default=1, help="trials final-trained to choose the pick (export's flag)")
    ap.add_argument("--jobs", type=int, default=1, help="final trainings run side by side (one thread each)")
    ap.add_argument("--out", default=None, help="export folder (default: OUTPUT_DIR/export-benchmark)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--no-search-budget", action="store_true", help="search without the pick's limits as its budget")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs: must be >= 1, got {args.jobs}")

    from autodistill.config import load_config
    from autodistill.export.pick import PickRule
    from autodistill.export.run import run_export, study_records
    from autodistill.search.run import Search, setup
    from autodistill.search.study import open_existing
    from autodistill.tasks.sequence_classification.prepare import prepare

    cfg = load_config(args.config, args.set)
    b = cfg.budget
    if not args.no_search_budget and all(v is None for v in vars(b).values()):
        limits = [f"budget.max_parameter_share={args.max_fraction}"]
        limits += [f"budget.min_speedup={args.min_speedup}"] if args.min_speedup else []
        cfg = load_config(args.config, [*args.set, *limits])
        print(f"search budget: {', '.join(limits)}")
    start = time.perf_counter()
    searched = Search(cfg, progress=False).run(args.n_trials)
    print(
        f"search: {searched['trained']} trained trials, {len(searched['front'])} on the front "
        f"({time.perf_counter() - start:.0f}s)"
    )

    prep = prepare(cfg, progress=False)
    teacher_params = sum(p.numel() for p in prep.teacher_model().parameters())
    rule = PickRule(
        max_params=int(args.max_fraction * teacher_params),
        min_speedup=args.min_speedup or None,
        candidates=args.candidates,
    )
    out = Path(args.out) if args.out else Path(cfg.output_dir) / "export-benchmark"
    t0 = time.perf_counter()
    r = run_export(cfg, rule, formats="onnx,int8", out=out, progress=False)
    print(f"export: trial {r['pick']['trial']} ({rule.describe()}) -> {out} ({time.perf_counter() - t0:.0f}s)")
    for c in r["pick"].get("candidates") or []:
        val, est = c["final_validation"], c["proxy_validation"]
        print(f"  candidate trial {c['trial']}: validation {val:.4f}, proxy {est:.4f}")
    print()

    s, t = r["student"], r["teacher"]
    metric = r["metric"]
    print(f"== picked student vs teacher (CPU, {r['latency']['threads']} thread(s), seq len {r['latency']['seq_len']})")
    print(f"{'':<26}{'teacher':>14}{'student':>14}{'ratio':>10}")
    print(
        f"{'parameters':<26}{t['parameters']['total']:>14,}{s['parameters']['total']:>14,}"
        f"{s['parameters']['total'] / t['parameters']['total']:>10.3f}"
    )
    print(f"{'test ' + metric:<26}{t['test']['quality']:>14.4f}{s['test']['quality']:>14.4f}")
    tb1, sb1 = t["latency_ms"]["latency_ms_b1"], s["latency_ms"]["latency_ms_b1"]
    print(f"{'latency b1 (ms)':<26}{tb1:>14.2f}{sb1:>14.2f}{tb1 / sb1:>9.2f}x   (target >= 3x)\n")

    f32, i8 = r["formats"]["onnx"], r["formats"]["int8"]
    f_b32, i_b32 = f32["latency_ms"]["latency_ms_b32"], i8["latency_ms"]["latency_ms_b32"]
    print("== int8 vs fp32 (onnxruntime, batch 32)")
    print(f"{'':<26}{'fp32':>14}{'int8':>14}")
    print(f"{'latency b32 (ms)':<26}{f_b32:>14.2f}{i_b32:>14.2f}   speedup {f_b32 / i_b32:.2f}x (target >= 1.5x)")
    print(
        f"{'test ' + metric:<26}{f32['test_quality']:>14.4f}{i8['test_quality']:>14.4f}"
        f"   int8 minus fp32 {100 * (i8['test_quality'] - f32['test_quality']):+.2f} points (target within 1)"
    )
    print(f"{'size MB':<26}{f32['size_mb']:>14.2f}{i8['size_mb']:>14.2f}\n")

    s_ = setup(cfg)
    study = open_existing(s_.storage, s_.study_name)
    records, _ = study_records(study, list(cfg.search.objectives))
    chosen = next(rec for rec in records if rec["number"] == r["pick"]["trial"])  # the export's pick
    proxy = {"proxy_steps": s_.space.spec.proxy_steps, "proxy_examples": s_.space.spec.proxy_examples}
    recipe = recipe_record(prep)
    seeds = [cfg.seed + i for i in range(args.seeds)]
    t0 = time.perf_counter()
    jobs = [(chosen, seed, True) for seed in seeds[1:]] + [(recipe, seed, False) for seed in seeds]
    runs = final_runs(args, prep, jobs, proxy)  # the export above is the picked student's first seed
    picked_q = [s["test"]["quality"]] + [run["quality"] for run in runs[: len(seeds) - 1]]
    recipe_q = [run["quality"] for run in runs[len(seeds) - 1 :]]
    recipe_params = runs[-1]["parameters"]
    steps = {"recipe": runs[-1]["steps"]}
    steps["picked"] = r["train"]["steps"]
    print(
        f"== picked student vs DistilBERT's recipe (depth 3 uniform, CE+KL alpha 0.5, T=2), median of {len(seeds)} "
        f"seeds {seeds} ({time.perf_counter() - t0:.0f}s)"
    )
    print(f"{'':<26}{'recipe':>14}{'picked':>14}")
    print(f"{'parameters':<26}{recipe_params:>14,}{s['parameters']['total']:>14,}")
    print(
        f"{'test ' + metric + ' (median)':<26}{statistics.median(recipe_q):>14.4f}{statistics.median(picked_q):>14.4f}"
    )
    print(
        f"{'test ' + metric + ' (each)':<26}{' '.join(f'{q:.4f}' for q in recipe_q):>14}  "
        f"{' '.join(f'{q:.4f}' for q in picked_q)}"
    )
    print(f"{'final training steps':<26}{steps['recipe']:>14}{steps['picked']:>14}")
    copies = cfg.distill.augment.ratio
    print(f"{'augmented copies/example':<26}{0:>14g}{copies:>14g}   (teacher-labelled, distill.augment)")
    if cfg.data.unlabeled and copies > 0:
        texts = len(prep.unlabeled()[0].texts)
        print(f"{'unlabeled texts':<26}{0:>14,}{texts:>14,}   ({', '.join(cfg.data.unlabeled)})")
    print(f"{'weight average decay':<26}{0:>14g}{cfg.distill.ema:>14g}   (distill.ema; 0 is off)")
    n_test = len(prep.encoded["test"])
    if metric == "accuracy":  # how far apart two medians can land by the test sample alone
        p = statistics.median(recipe_q)
        se = 100 * (p * (1 - p) / n_test) ** 0.5
        print(f"{'one standard error':<26}{se:>14.2f}   points of one accuracy on {n_test:,} test examples")
    verdict = statistics.median(picked_q) >= statistics.median(recipe_q) and s["parameters"]["total"] < recipe_params
    print(f"target (equal or better accuracy at fewer parameters): {'met' if verdict else 'NOT met'}")
    summary = {
        "export": {k: r[k] for k in ("pick", "student", "teacher", "formats", "relative")},
        "recipe": {"parameters": recipe_params, "test": recipe_q},
        "picked": {"test": picked_q},
        "seeds": seeds,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out.parent / "export_speed.json").write_text(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
