"""Issue 3: predeclared compression arms at one budget (<= 40% of the teacher's parameters),
vocabulary pruning shared by all arms, each distilled with CE + KL for the same steps on the
built-in Rotten Tomatoes set with the fine-tuned MiniLM teacher. Choices (which arm is best)
are made on validation; test accuracy is reported next to the teacher's.

    .venv/bin/python benchmarks/transform_arms.py [--steps 400] [--seeds 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import median, prepared, run_arm  # noqa: E402

VOCAB = {"name": "vocab", "min_count": 2}
ARMS = {
    "depth alone": [VOCAB, {"name": "depth", "layers": 2, "choice": "uniform"}],
    "depth + heads + ffn": [
        VOCAB,
        {"name": "depth", "layers": 4, "choice": "uniform"},
        {"name": "heads", "ratio": 0.5},
        {"name": "ffn", "ratio": 0.5},
    ],
    "hidden (Minitron)": [VOCAB, {"name": "hidden", "ratio": 0.5}],
    "SVD factors": [
        VOCAB,
        {"name": "depth", "layers": 4, "choice": "uniform"},
        {"name": "low_rank", "targets": ["ffn_in", "ffn_out"], "rank": 128, "activation_aware": True},
    ],
}
CE_KL = [{"name": "ce", "weight": 0.5}, {"name": "kl", "weight": 0.5}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--budget", type=float, default=0.40)
    args = ap.parse_args()
    prep = prepared(args.config, [])
    from autodistill.specs import Step, StudentSpec
    from autodistill.tasks import get_task

    teacher_params = sum(p.numel() for p in prep.teacher_model().parameters())
    t_test = prep.teacher_metrics["test"]["quality"]
    print(
        f"teacher: {teacher_params:,} parameters, test accuracy {t_test:.4f}; budget {args.budget:.0%} = "
        f"{int(args.budget * teacher_params):,}; {args.steps} steps, {args.seeds} seed(s)"
    )
    print(f"{'arm':<22}{'params':>12}{'ratio':>8}{'val':>8}{'test':>8}{'test/teacher':>14}{'s':>7}")
    results = {}
    for name, transforms in ARMS.items():
        spec = StudentSpec(tuple(Step.from_dict(t) for t in transforms))
        n = get_task(prep.cfg).predicted_parameters(prep, spec)
        if n > args.budget * teacher_params:
            print(f"{name:<22}{n:>12,} over the budget; skipped")
            continue
        rows = [run_arm(prep, transforms, CE_KL, args.steps, seed) for seed in range(args.seeds)]
        results[name] = rows
        v, t = median(rows, "validation"), median(rows, "test")
        print(
            f"{name:<22}{rows[0]['parameters']:>12,}{rows[0]['parameters'] / teacher_params:>8.3f}{v:>8.4f}{t:>8.4f}"
            f"{t / t_test:>14.3f}{median(rows, 'seconds'):>7.0f}",
            flush=True,
        )
    best = max(results, key=lambda k: median(results[k], "validation"))
    t = median(results[best], "test")
    print(
        f"chosen on validation: {best!r}: test {t:.4f} = {t / t_test:.1%} of the teacher's at "
        f"{results[best][0]['parameters'] / teacher_params:.1%} of its parameters"
    )


if __name__ == "__main__":
    main()
