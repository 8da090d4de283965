"""Student forms under the parameter cap, final-trained side by side (run by hand, not in CI).

    python benchmarks/student_forms.py configs/demo.yaml [--forms 2,3ffn50,4thin,6thin] [--loss recipe|hidden|...]
        [--lr 3e-4] [--seed 0] [--score gradient|fisher|magnitude] [--layers 1,3,5] [--set KEY=VALUE ...]

Each named form (vocabulary pruned with min_count 2, then depth, heads and FFN pruning) is built
from the teacher and distilled at the config's full length (``export``'s final training), with
DistilBERT's loss (CE + KL, alpha 0.5, T = 2), that plus hidden-state MSE (weight 1; ``hidden3``:
weight 3) or plus MiniLMv2 attention relations as well (``relation``). Prints each
form's test accuracy, parameters as a share of the teacher's and its batch-1 speedup over the
teacher, the two timed with their passes interleaved in this process. It shows which forms can
meet both export targets (3x at batch 1, the recipe's accuracy) on a given teacher.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from export_speed import RECIPE_LOSS  # noqa: E402

VOCAB = ("vocab", {"min_count": 2})
FORMS = {
    "recipe": [("depth", {"layers": 3, "choice": "uniform"})],  # DistilBERT's form, full vocabulary
    "2": [VOCAB, ("depth", {"layers": 2, "choice": "uniform"})],
    "3": [VOCAB, ("depth", {"layers": 3, "choice": "uniform"})],
    "3ffn50": [VOCAB, ("depth", {"layers": 3, "choice": "uniform"}), ("ffn", {"ratio": 0.5})],
    "4thin": [VOCAB, ("depth", {"layers": 4, "choice": "uniform"}), ("heads", {"ratio": 0.5}), ("ffn", {"ratio": 0.5})],
    "5thin": [
        VOCAB,
        ("depth", {"layers": 5, "choice": "uniform"}),
        ("heads", {"ratio": 0.5}),
        ("ffn", {"ratio": 0.25}),
    ],
    "6thin": [VOCAB, ("heads", {"ratio": 0.5}), ("ffn", {"ratio": 0.25})],
    "4h50f25": [
        VOCAB,
        ("depth", {"layers": 4, "choice": "uniform"}),
        ("heads", {"ratio": 0.5}),
        ("ffn", {"ratio": 0.25}),
    ],
    "3h43f41": [  # the budgeted speed search's pick (docs/MEASUREMENTS.md, Export)
        VOCAB,
        ("depth", {"layers": 3, "choice": "uniform"}),
        ("heads", {"ratio": 0.4311}),
        ("ffn", {"ratio": 0.4062}),
    ],
    "3h33f36": [  # the budgeted speed search's pick after Fisher scoring (docs/MEASUREMENTS.md, Export)
        VOCAB,
        ("depth", {"layers": 3, "choice": "uniform"}),
        ("heads", {"ratio": 0.3333}),
        ("ffn", {"ratio": 0.3600}),
    ],
    "3x75h50f50": [  # hidden channels pruned as well (Minitron-style width pruning)
        VOCAB,
        ("depth", {"layers": 3, "choice": "uniform"}),
        ("hidden", {"ratio": 0.75}),
        ("heads", {"ratio": 0.5}),
        ("ffn", {"ratio": 0.5}),
    ],
    "4x75h50f50": [
        VOCAB,
        ("depth", {"layers": 4, "choice": "uniform"}),
        ("hidden", {"ratio": 0.75}),
        ("heads", {"ratio": 0.5}),
        ("ffn", {"ratio": 0.5}),
    ],
    # the last layer's FFN (and its query and output) run for the first position alone at
    # inference, so keeping its FFN whole costs parameters, not time
    "3h43f41L": [
        VOCAB,
        ("depth", {"layers": 3, "choice": "uniform"}),
        ("heads", {"ratio": 0.4311}),
        ("ffn", {"ratio": [0.4062, 0.4062, 1.0]}),
    ],
    "3h43f41LH": [
        VOCAB,
        ("depth", {"layers": 3, "choice": "uniform"}),
        ("heads", {"ratio": [0.4311, 0.4311, 1.0]}),
        ("ffn", {"ratio": [0.4062, 0.4062, 1.0]}),
    ],
    # the full vocabulary (the teacher's tokenizer as it is) with a factored word embedding
    # (ALBERT's vocab x r and r -> hidden) instead of a pruned vocabulary, then the 3h43f41 shape
    "3h43f41e128": [
        ("depth", {"layers": 3, "choice": "uniform"}),
        ("heads", {"ratio": 0.4311}),
        ("ffn", {"ratio": 0.4062}),
        ("low_rank", {"targets": [], "embedding_rank": 128}),
    ],
    "3h50f50": [
        VOCAB,
        ("depth", {"layers": 3, "choice": "uniform"}),
        ("heads", {"ratio": 0.5}),
        ("ffn", {"ratio": 0.5}),
    ],
}
LOSSES = {
    "recipe": RECIPE_LOSS,
    "hidden": {**RECIPE_LOSS, "terms": [*RECIPE_LOSS["terms"], {"name": "hidden_mse", "weight": 1.0}]},
    "hidden3": {**RECIPE_LOSS, "terms": [*RECIPE_LOSS["terms"], {"name": "hidden_mse", "weight": 3.0}]},
    "relation": {
        **RECIPE_LOSS,
        "terms": [
            *RECIPE_LOSS["terms"],
            {"name": "hidden_mse", "weight": 1.0},
            {"name": "attention_relation", "weight": 1.0, "relation_heads": 16},
        ],
    },
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--forms", default=",".join(FORMS), help=f"comma-separated, of {', '.join(FORMS)}")
    ap.add_argument("--loss", choices=sorted(LOSSES), default="recipe")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the config's distill.lr)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-count", type=int, default=2, help="vocabulary pruning's min_count for the pruned forms")
    ap.add_argument("--score", choices=["gradient", "fisher", "magnitude"], default="gradient", help="heads/ffn score")
    ap.add_argument("--layers", default=None, help="teacher layers the depth step keeps, e.g. 0,2,5 (explicit)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = ap.parse_args(argv)
    unknown = [f for f in args.forms.split(",") if f not in FORMS]
    if unknown:
        ap.error(f"--forms: unknown form(s) {unknown}; choose from {list(FORMS)}")

    from autodistill.config import load_config
    from autodistill.evaluate.measure import measure_models
    from autodistill.export.retrain import final_student
    from autodistill.specs import Step, StudentSpec
    from autodistill.student.build import build_student
    from autodistill.tasks.sequence_classification.evaluate import latency_seq_len
    from autodistill.tasks.sequence_classification.prepare import prepare

    cfg = load_config(args.config, args.set)
    prep = prepare(cfg, progress=False)
    teacher = prep.teacher_model()
    seq_len = latency_seq_len(cfg, prep.encoded["test"].lengths)
    train = {"lr": args.lr} if args.lr else {}
    print(
        f"loss {args.loss}, lr {args.lr or cfg.distill.lr}, seed {args.seed}, vocabulary min_count {args.min_count}, "
        f"heads/ffn score {args.score}, layers {args.layers or 'as the form says'}, "
        f"calibration examples {cfg.student.calibration_examples}, "
        f"{cfg.distill.epochs} epochs, batch-1 latency at seq len {seq_len}"
    )
    print(f"{'form':<8}{'valid':>8}{'test':>8}{'parameters':>13}{'share':>8}{'speedup b1':>12}")
    for name in args.forms.split(","):
        steps = [(n, {**o, "min_count": args.min_count} if n == "vocab" else o) for n, o in FORMS[name]]
        steps = [(n, {**o, "score": args.score} if n in ("heads", "ffn") else o) for n, o in steps]
        if args.layers:
            keep = [int(i) for i in args.layers.split(",")]
            steps = [(n, {"choice": "explicit", "layers_to_keep": keep} if n == "depth" else o) for n, o in steps]
        built = build_student(teacher, StudentSpec(tuple(Step(n, o) for n, o in steps)), prep.build_context())
        record = {"number": -1, "resolved": built.resolved, "loss": LOSSES[args.loss], "train": train}
        record["objectives"] = {"quality": float("nan")}
        final = final_student(prep, record, {"proxy_steps": 1, "proxy_examples": 1}, retrain=True, seed=args.seed)
        student = final.run.build.export_model().eval()
        s, t = measure_models([student, teacher], cfg, seq_len)
        n, n_t = s["parameters"]["total"], t["parameters"]["total"]
        speedup = t["latency_ms"]["latency_ms_b1"] / s["latency_ms"]["latency_ms_b1"]
        valid = final.run.validation["quality"]
        print(
            f"{name:<8}{valid:>8.4f}{final.test['quality']:>8.4f}{n:>13,}{n / n_t:>8.3f}{speedup:>11.2f}x", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
