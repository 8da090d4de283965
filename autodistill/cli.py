"""The command line: a table of commands -> functions. It parses and prints; the work is ``api``'s,
one function per command, with the same arguments (the export rule's flags are ``PickRule``'s fields)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from autodistill import api
from autodistill.errors import AutodistillError


def _load(args: argparse.Namespace) -> Any:
    return api.load(args.config, args.set)


def _shown(metrics: dict, metric: str) -> float:
    """The figure a table shows for ``metric``: perplexity itself for causal LMs (their ``quality``
    is 1 / perplexity), else ``quality``."""
    return metrics["perplexity"] if metric == "perplexity" else metrics["quality"]


def _lm_teacher(info: dict) -> None:
    how = "converted once from GGUF" if info.get("converted") else "used as it is"
    adapted = info.get("adapted")
    if adapted:
        how = (
            f"adapted to the training text: validation perplexity {adapted['validation_perplexity_before']:.3f} -> "
            f"{adapted['validation_perplexity']:.3f}, best at step {adapted['best_step']} of {adapted['steps']}, "
            f"stopped: {adapted['stopped']}"
        )
    print(f"teacher: {info['path']} ({how})")
    for split, n in info["tokens"].items():
        print(f"  {split}: {n['documents']:,} documents, {n['blocks']:,} blocks, {n['tokens']:,} tokens")
    for split in ("validation", "test"):
        print(f"  {split} perplexity {info[split]['perplexity']:.3f}")


def cmd_teacher(args: argparse.Namespace) -> int:
    info = api.teacher(_load(args), progress=not args.quiet)
    if "tokens" in info:
        _lm_teacher(info)
    else:
        _classifier_teacher(info)
    return 0


def _epochs(steps: int, per_epoch: int | None) -> str:
    return f" ({steps / per_epoch:.1f} epochs)" if per_epoch else ""


def _classifier_teacher(info: dict) -> None:
    """Where the teacher is, how it was trained (epochs, the validation curve, why it stopped) and
    its validation and test quality."""
    t = info.get("training")
    if not t:
        print(f"teacher: {info['path']} (a classifier already; used as it is)")
    else:
        per = t.get("steps_per_epoch")
        print(f"teacher: {info['path']}")
        why = "ran to its cap" if t["stopped"] == "step cap" else f"stopped: {t['stopped']}"
        print(
            f"  fine-tuned {t['steps']} steps{_epochs(t['steps'], per)}, best at step {t['best_step']}"
            f"{_epochs(t['best_step'], per)}; {why}"
            + (f"; {t['seconds']:,.0f} s" if t.get("seconds") is not None else "")
        )
        if t.get("curve"):
            points = ", ".join(f"{q:.4f} at step {s}" for s, q in t["curve"])
            print(f"  validation {info['metric']} at each checkpoint: {points}")
    _teachers(info.get("teachers"), info["metric"])
    for split in ("validation", "test"):
        m = info[split]
        print(
            f"  {split} {info['metric']} {m['quality']:.4f} (accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f})"
        )


def _teachers(record: dict | None, metric: str) -> None:
    """``teacher.extra``: each teacher's quality and their combination's (the figures after it)."""
    if not record:
        return
    for t in record["teachers"]:
        print(f"  teacher {t['model']}: validation {metric} {t['validation']:.4f}, test {t['test']:.4f}")
    weights = f", weights {record['weights']}" if record.get("weights") else ""
    print(f"  the students learn from all {len(record['teachers'])} combined by {record['combine']}{weights}:")


def cmd_distill(args: argparse.Namespace) -> int:
    cfg = _load(args)
    result = api.distill(cfg, progress=not args.quiet)
    s, t, r = result["student"], result["teacher"], result["relative"]
    metric = result["metric"]
    print(f"student saved to {s['path']}  ({cfg.output_dir}/result.json)")
    rows = [
        (
            "test " + metric,
            f"{_shown(t['test'], metric):.4f}",
            f"{_shown(s['test'], metric):.4f}",
            f"{r['test_quality_ratio']:.3f}",
        ),
        ("parameters", f"{t['parameters']['total']:,}", f"{s['parameters']['total']:,}", f"{r['parameter_ratio']:.3f}"),
        ("size MB", f"{t['size_mb']:.1f}", f"{s['size_mb']:.1f}", f"{r['size_ratio']:.3f}"),
    ]
    for key, val in s.get("latency_ms", {}).items():
        rows.append((key.replace("_", " "), f"{t['latency_ms'][key]:.2f}", f"{val:.2f}", ""))
    if s.get("energy", {}).get("method", "unavailable") != "unavailable":
        a, b = t["energy"]["joules_per_1000"], s["energy"]["joules_per_1000"]
        rows.append((f"J/1000 ({s['energy']['method']})", f"{a:.2f}", f"{b:.2f}", f"{b / max(a, 1e-12):.3f}"))
    if s.get("runtime_latency"):
        a, b = t["runtime_latency"]["latency_ms_b1"], s["runtime_latency"]["latency_ms_b1"]
        rows.append((f"{s['runtime_latency']['runtime']} ms b1", f"{a:.2f}", f"{b:.2f}", f"{a / b:.2f}x"))
    print(f"{'':<22}{'teacher':>14}{'student':>14}{'ratio':>9}")
    for name, a, b, c in rows:
        print(f"{name:<22}{a:>14}{b:>14}{c:>9}")
    _student_training(result["train"])
    _share(result)
    _classes(result)
    return 0


def _student_training(train: dict) -> None:
    """How long the student trained, why it stopped, and whether teacher-labelled copies joined."""
    stop = train.get("stop_reason") or "the step cap"
    print(f"the student trained {train['steps']} steps, best at step {train.get('best_step')}; stopped: {stop}")
    _targets(train.get("targets"))
    if train.get("qat_from_step"):
        print(f"  fake-quantised to the int8 grids from step {train['qat_from_step']} on (distill.qat)")
    aug = train.get("augment")
    if aug:
        print(
            f"  with {aug['ratio']:g} teacher-labelled cop{'y' if aug['ratio'] == 1 else 'ies'} per example ({aug['why']})"
        )


def _targets(record: dict | None) -> None:
    """What the student learned from, when not the teacher alone (distill.combine, distill.assistant)."""
    if not record:
        return
    if record["kind"] == "assistant":
        a = record["assistant"]
        print(
            f"  from a {a['layers']}-layer teacher assistant (validation {a['validation']:.4f}, test {a['test']:.4f}; "
            f"distilled once, {a['steps']} steps)"
        )
    elif record["kind"] == "teachers":
        t = record["teachers"]
        print(f"  from {len(t['teachers'])} teachers combined by {t['combine']} (test {t['combined']['test']:.4f})")
    if record.get("assistant_skipped"):
        print(f"  no assistant: {record['assistant_skipped']}")


def _share(result: dict) -> None:
    """The student's test quality as a share of the teacher's, and how long the teacher trained."""
    metric, ratio = result["metric"], result["relative"]["test_quality_ratio"]
    what = "quality (the perplexity ratio)" if metric == "perplexity" else metric
    t = result["teacher"].get("training")
    how = "used as it is"
    if t:
        cap = f"at most {t['epochs']} epochs" if t.get("epochs") and not t.get("max_steps") else "its step cap"
        per = t.get("steps_per_epoch")
        how = (
            f"trained {t['steps']} steps{_epochs(t['steps'], per)} ({cap}), best at step {t['best_step']}; "
            f"stopped: {t['stopped']}"
        )
    print(f"the student keeps {ratio:.1%} of the teacher's test {what}; teacher {how}")


def _classes(result: dict) -> None:
    """Recall per class beside the teacher's (up to 20 classes), and the classes the student drops."""
    c = result.get("classes")
    if not c:
        return
    if len(c["classes"]) <= 20:
        print(f"{c['split']} recall per class{'':<6}{'teacher':>14}{'student':>14}{'examples':>9}")
        for name, t, s, n in zip(c["classes"], c["teacher_recall"], c["student_recall"], c["support"]):
            shown = [f"{v:.4f}" if v is not None else "-" for v in (t, s)]
            print(f"  {str(name)[:34]:<34}{shown[0]:>14}{shown[1]:>14}{n:>9,}")
    if c["dropped"]:
        print(
            f"warning: the student drops {', '.join(map(str, c['dropped']))}: recall under half the teacher's on "
            "a class the teacher handles. Train longer, add teacher-labelled copies (distill.augment) or pick "
            "a larger student.",
            file=sys.stderr,
        )


def cmd_evaluate(args: argparse.Namespace) -> int:
    out = api.evaluate(_load(args), args.model, split=args.split, progress=not args.quiet)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    if out["metric"] == "perplexity":
        print(f"{out['model']} on {out['split']}: perplexity {out['perplexity']:.4f} over {out['tokens']:,} tokens")
    else:
        extra = "" if out["metric"] in ("accuracy", "macro_f1") else f", {out['metric']} {out['quality']:.4f}"
        print(
            f"{out['model']} on {out['split']}: accuracy {out['accuracy']:.4f}, macro-F1 {out['macro_f1']:.4f}{extra}"
        )
    print(
        f"  parameters {out['parameters']['total']:,} (without embeddings {out['parameters']['without_embeddings']:,}), "
        f"{out['size_mb']:.1f} MB"
    )
    for key, val in out.get("latency_ms", {}).items():
        print(f"  {key}: {val:.2f}")
    return 0


def _front_table(front: list[dict], objectives: list[str]) -> None:
    # a causal LM's trials carry perplexity (its quality is 1 / perplexity), a classifier's accuracy
    shown = "perplexity" if any("perplexity" in r.get("metrics", {}) for r in front) else "accuracy"
    label = "val ppl" if shown == "perplexity" else "val acc"
    head = f"{'trial':>6}" + "".join(f"{o:>14}" for o in objectives) + f"{label:>10}{'param ratio':>13}"
    print(head)
    for r in front:
        vals = "".join(
            f"{r['objectives'][o]:>14,.0f}" if o == "parameters" else f"{r['objectives'][o]:>14.4f}" for o in objectives
        )
        m = r.get("metrics", {})
        print(
            f"{r['number']:>6}{vals}{m.get(shown, float('nan')):>10.4f}{m.get('parameter_ratio', float('nan')):>13.3f}"
        )


def cmd_plan(args: argparse.Namespace) -> int:
    out = api.plan(_load(args), progress=not args.quiet)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(
        f"search space {out['space']!r}: {out['space_size']:.3g} points; proxy {out['proxy_steps']} steps on "
        f"{out['proxy_examples']} examples"
    )
    print(f"study {out['study_name']!r} in {out['storage']}")
    print(
        f"teacher: {out['teacher_parameters']:,} parameters; teacher-output cache {out['cache_mb']:.1f} MB at {out['cache_folder']}"
        + (
            f", up to {out['cache_growth_mb_max']:.0f} MB more for the hidden states and attention the losses map"
            if out["cache_growth_mb_max"]
            else ""
        )
    )
    print(
        f"students (of {out['sampled_points']} sampled): {out['predicted_parameters_min']:,} to "
        f"{out['predicted_parameters_max']:,} parameters; {100 * out['predicted_refused_fraction']:.0f}% would be refused by the budget"
    )
    if "trial_seconds_max" in out:
        print(
            f"cost: about {out['trial_seconds_max']:.0f}s per trial for the largest student ({out['step_seconds'] * 1000:.0f} ms "
            f"a step, timed over {out['probe_steps']} steps), so at most about {out['estimated_search_seconds_max'] / 60:.0f} min "
            f"for {out['n_trials']} trained trials (one-off cache fills not included)"
        )
    print("budget feasible" if out["budget_feasible"] else "budget NOT feasible: no sampled student meets it")
    print(_fidelity_line(out.get("proxy_fidelity")))
    return 0


def _fidelity_line(rec: dict | None) -> str:
    """How far the space's proxies rank students as full training does, as last measured."""
    if not rec:
        return "proxy fidelity: not measured for this space (benchmarks/proxy_fidelity.py)"
    parts = [
        f"Spearman {r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}] at {f['label']}"
        if (r := f["spearman"])["value"] is not None
        else f"Spearman n/a (scores tied) at {f['label']}"
        for f in rec["fidelities"]
    ]
    capped = f"; full length capped at {rec['full_steps']} steps" if rec.get("full_steps_capped") else ""
    return f"proxy fidelity (measured {rec['measured']} on {rec['students']} students{capped}): " + ", ".join(parts)


def cmd_search(args: argparse.Namespace) -> int:
    from autodistill.config.run import SearchConfig
    from autodistill.config.schema import check_as

    for key, flag, value in (("n_trials", "--n-trials", args.n_trials), ("timeout", "--timeout", args.timeout),
                             ("n_trials", "--more", args.more)):  # fmt: skip
        if value is not None:  # unset takes the config's value
            check_as(SearchConfig, key, value, f"{flag!r} flag", f"search.{key}")
    cfg = _load(args)
    out = api.search(
        cfg, args.n_trials, args.timeout, args.storage, args.study_name, progress=not args.quiet, more=args.more,
        compare_random=args.compare_random,
    )  # fmt: skip
    print(
        f"study {out['study']!r}: {out['trained']} trained trials in {out['seconds']:.0f}s; "
        f"{len(out['front'])} on the Pareto front ({cfg.output_dir}/pareto.json)"
    )
    _front_table(out["front"], out["objectives"])
    e = out["effort"]
    rungs = ", ".join(f"{r['trials']} reached step {r['step']}" for r in e["rungs"])
    print(f"proxy steps spent: {e['steps']:,} by {e['trials']} trained trials ({rungs or 'none recorded'})")
    r = out.get("random")
    if r:
        print(
            f"random sampling at the same proxy steps (study {r['study']!r}: {r['trained']} trials, {r['steps']:,} "
            f"steps): front hypervolume {r['main_hypervolume']:.4f} here against {r['hypervolume']:.4f} "
            f"({' against '.join(r['objectives'])}, each scaled to the range both studies reached)"
        )
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    cfg = _load(args)
    out = api.pareto(cfg, storage=args.storage, study_name=args.study_name)
    print(
        f"study {out['study']!r}: {len(out['front'])} on the front; wrote pareto.json, pareto.csv, pareto.png to "
        f"{cfg.output_dir}"
    )
    _front_table(out["front"], list(cfg.search.objectives))
    return 0


def _close_calls(res: dict | None) -> None:
    """The trials validation cannot tell from the pick (within two standard errors of it)."""
    if res and res["close"]:
        near = ", ".join(f"{c['trial']} ({c['quality']:.4f})" for c in res["close"])
        print(
            f"  within two standard errors of the pick's validation ({2 * res['standard_error']:.4f} on "
            f"{res['examples']:,} examples): trials {near}; the split cannot tell them apart "
            "(--candidates K trains the K best in full and keeps the best)"
        )


def cmd_export(args: argparse.Namespace) -> int:
    rule = {o.name: getattr(args, o.name) for o in api.rule_options()}
    r = api.export(
        _load(args),
        **rule,
        formats=args.formats,
        out=args.out,
        retrain=False if args.no_retrain else None,
        register=args.register,
        storage=args.storage,
        study_name=args.study_name,
        progress=not args.quiet,
    )
    s, t, p = r["student"], r["teacher"], r["pick"]
    print(f"exported trial {p['trial']} ({p['rule']}; {s['kind']} student) to {r['path']}")
    print(f"  {r['train']['mode_text']}")
    for c in p.get("candidates") or []:
        print(
            f"  candidate trial {c['trial']}: validation {c['final_validation']:.4f} (proxy {c['proxy_validation']:.4f})"
        )
    _close_calls(p.get("resolution"))
    metric = r["metric"]
    print(f"{'':<30}{'teacher':>12}{'student':>12}")
    print(f"{'test ' + metric:<30}{_shown(t['test'], metric):>12.4f}{_shown(s['test'], metric):>12.4f}")
    proxy = r["proxy"]["validation_quality"]
    proxy = 1 / proxy if metric == "perplexity" else proxy
    print(f"{'proxy validation estimate':<30}{'':>12}{proxy:>12.4f}")
    print(f"{'parameters':<30}{t['parameters']['total']:>12,}{s['parameters']['total']:>12,}")
    print(f"{'size MB':<30}{t['size_mb']:>12.2f}{s['size_mb']:>12.2f}")
    for key, val in s.get("latency_ms", {}).items():
        print(f"{key.replace('_', ' '):<30}{t['latency_ms'][key]:>12.2f}{val:>12.2f}")
    if s.get("runtime_latency"):
        name = f"{s['runtime_latency']['runtime']} latency ms b1"
        print(f"{name:<30}{t['runtime_latency']['latency_ms_b1']:>12.2f}{s['runtime_latency']['latency_ms_b1']:>12.2f}")
    if "gguf" in r["formats"]:
        g = r["formats"]["gguf"]
        print(f"  gguf: {g['file']}, {g['bytes'] / 1e6:.1f} MB ({g['dtype']}), for llama.cpp")
    for name in ("onnx", "int8"):
        f = r["formats"].get(name)
        if f and "latency_ms" not in f:  # a causal LM's scorer graph: checked against PyTorch, not timed
            print(f"  {name}: {f['file']}, {f['size_mb']:.2f} MB, next-token agreement {f['agreement']:.4f}")
        elif f:
            lat = f["latency_ms"]
            print(
                f"  {name}: {f['file']}, {f['size_mb']:.2f} MB, test {metric} {f['test_quality']:.4f}, agreement "
                f"{f['agreement']:.4f}, b1 {lat['latency_ms_b1']:.2f} ms, b32 {lat['latency_ms_b32']:.2f} ms"
            )
    _share(r)
    _classes(r)
    m = r.get("mlflow")
    if m:
        reg = m.get("registered")
        note = f"; registered {reg['name']!r} version {reg['version']}" if reg else ""
        print(f"  MLflow: logged to run {m['run_id']}{note}")
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    _study_args(p)
    for o in api.rule_options():  # unset (None): the config's export rule
        p.add_argument(o.flag, type=o.type, default=None, help=o.help)
    p.add_argument(
        "--no-retrain",
        action="store_true",
        help="export the trial's proxy student (its proxy run is rerun exactly; weights are not stored)",
    )
    p.add_argument(
        "--formats",
        default=None,
        help="comma-separated: hf,onnx,int8 for classifiers, hf,gguf,onnx for causal LMs (default: export.formats, hf)",
    )
    p.add_argument("--out", default=None, help="export folder (default: export.out, else OUTPUT_DIR/export)")
    p.add_argument("--register", default=None, metavar="NAME", help="register the exported model in MLflow under NAME")


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite in output_dir)")
    p.add_argument("--study-name", default=None, help="study name (default: output_dir's name)")


def _search_args(p: argparse.ArgumentParser) -> None:
    _study_args(p)
    p.add_argument("--n-trials", type=int, default=None, help="the study's total of trained trials (not an increment)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    p.add_argument(
        "--more",
        type=int,
        default=None,
        help="train N more trials than the study holds (goes on after a finished search)",
    )
    p.add_argument(
        "--compare-random",
        action="store_true",
        help="then run random sampling (study NAME-random) for the same proxy steps and compare the fronts' hypervolumes",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="run config (YAML)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set distill.lr=1e-4 (repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# name -> (function, help, extra-arguments hook)
COMMANDS: dict[
    str, tuple[Callable[[argparse.Namespace], int], str, Callable[[argparse.ArgumentParser], None] | None]
] = {
    "teacher": (cmd_teacher, "fine-tune the teacher backbone (reused when present)", None),
    "distill": (cmd_distill, "run one fixed distillation and save the student", None),
    "evaluate": (
        cmd_evaluate,
        "evaluate a saved student or teacher folder on the config's test split",
        lambda p: (
            p.add_argument("--model", required=True, help="a saved model folder"),
            p.add_argument("--split", default="test", choices=["train", "validation", "test"]),
            p.add_argument("--json", action="store_true", help="print JSON"),
        ),
    ),
    "plan": (
        cmd_plan,
        "what a search would do: space size, cache size, feasible budgets (no training)",
        lambda p: p.add_argument("--json", action="store_true", help="print JSON"),
    ),
    "search": (cmd_search, "search students and loss mixtures; running it again continues the study", _search_args),
    "pareto": (cmd_pareto, "print the study's Pareto front and write pareto.json/.csv/.png", _study_args),
    "export": (
        cmd_export,
        "pick a student from the study, train it in full, export it (HF; ONNX, int8, GGUF as the task allows)",
        _export_args,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autodistill", description="AutoML knowledge distillation for Hugging Face models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, help_text, extra) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        if extra:
            extra(p)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AutodistillError as err:
        print(f"autodistill {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"autodistill {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
