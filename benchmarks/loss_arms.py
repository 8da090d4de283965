"""Issue 4: predeclared loss arms for the same steps on the same student (2 layers, vocabulary
pruned) on the built-in Rotten Tomatoes set with the fine-tuned MiniLM teacher, 3 seeds.
Choices are made on validation; test accuracy (median of seeds) is reported with the teacher's.

    .venv/bin/python benchmarks/loss_arms.py [--steps 300] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import median, prepared, run_arm  # noqa: E402

STUDENT = [{"name": "vocab"}, {"name": "depth", "layers": 2, "choice": "uniform"}]
CE_KL = [{"name": "ce", "weight": 0.5}, {"name": "kl", "weight": 0.5}]
HIDDEN = {"name": "hidden_mse", "weight": 1.0}
ATTN = {"name": "attention_mse", "weight": 1.0}


def arms(contrastive_weight: float) -> dict[str, tuple[list[dict], str]]:
    contr = {"name": "contrastive", "weight": contrastive_weight}
    full = CE_KL + [HIDDEN, ATTN, contr]
    return {
        "CE + KL": (CE_KL, "static"),
        "+ hidden MSE": (CE_KL + [HIDDEN], "static"),
        "+ attention": (CE_KL + [ATTN], "static"),
        "+ contrastive": (CE_KL + [contr], "static"),
        "full, static": (full, "static"),
        "full, uncertainty": (full, "uncertainty"),
        "full, dwa": (full, "dwa"),
        "full, lag": (full, "lag"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--arms", default=None, help="comma-separated subset of arm names")
    ap.add_argument("--contrastive-weight", type=float, default=0.1, help="weight of the contrastive term")
    args = ap.parse_args()
    prep = prepared(args.config, [])
    t_test = prep.teacher_metrics["test"]["quality"]
    print(
        f"teacher test accuracy {t_test:.4f}; student: vocab + 2 uniform layers; {args.steps} steps; "
        f"{args.seeds} seeds (median); contrastive weight {args.contrastive_weight}"
    )
    print(f"{'arm':<20}{'val':>8}{'test':>8}{'test/teacher':>14}{'s/run':>7}   per-seed test")
    chosen = {k: v for k, v in arms(args.contrastive_weight).items() if args.arms is None or k in args.arms.split(",")}
    results = {}
    for name, (terms, weighting) in chosen.items():
        rows = [run_arm(prep, STUDENT, terms, args.steps, seed, weighting=weighting) for seed in range(args.seeds)]
        results[name] = rows
        v, t = median(rows, "validation"), median(rows, "test")
        seeds = " ".join(f"{r['test']:.4f}" for r in rows)
        print(f"{name:<20}{v:>8.4f}{t:>8.4f}{t / t_test:>14.3f}{median(rows, 'seconds'):>7.0f}   {seeds}", flush=True)
    best = max(results, key=lambda k: median(results[k], "validation"))
    base = median(results["CE + KL"], "test") if "CE + KL" in results else float("nan")
    print(f"best on validation: {best!r}, test {median(results[best], 'test'):.4f} vs CE + KL {base:.4f}")


if __name__ == "__main__":
    main()
