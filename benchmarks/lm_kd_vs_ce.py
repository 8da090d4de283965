"""Does distillation beat training on the text alone, and does the searched recipe beat a fixed one?

Three arms on the same data, steps and seeds (median of the seeds, spread beside it):
- ``kd``: the student (``--keep`` of the teacher's layers, by importance) distilled with forward KL
  on the cached top-k logits at T = 1;
- ``kd_ce``: the same student distilled with forward KL and next-token CE on the text, half each
  (Hinton et al.'s mixture);
- ``ce``: the same student trained with next-token cross-entropy on the text alone (no teacher);
- ``uniform_fkl``: the fixed recipe (the teacher's layers cut uniformly to the same count,
  forward KL at T = 1).
- ``pick`` (with ``--pick runs/lm_demo/export/export.json``): the search's pick as exported, its
  student, loss mixture, temperature and learning rate, trained for the same steps.
Every student starts from the teacher's own layers, so the arms differ only in what they learn from.
The teacher's test perplexity is printed beside them.

    python benchmarks/lm_kd_vs_ce.py --config configs/lm_demo.yaml --steps 150 --seeds 0 1 2

``--set teacher.adapt=true`` (with ``teacher.finetune.*`` settings) first fine-tunes the teacher on
the training text (``teacher.adapt``), so the students learn from a teacher that knows the domain.
"""

from __future__ import annotations

import argparse
import json

from lm_common import prepared, run_arm, summary

ARMS = {
    "kd": ("importance", [{"name": "fkl", "weight": 1.0}]),
    "kd_ce": ("importance", [{"name": "fkl", "weight": 0.5}, {"name": "ce", "weight": 0.5}]),
    "ce": ("importance", [{"name": "ce", "weight": 1.0}]),
    "uniform_fkl": ("uniform", [{"name": "fkl", "weight": 1.0}]),
}


def _fixed(arm: str, keep: float) -> tuple[list[dict], list[dict], float, float | None]:
    choice, terms = ARMS[arm]
    return [{"name": "depth", "keep": keep, "choice": choice}], terms, 1.0, None


def _picked(path: str) -> tuple[list[dict], list[dict], float, float | None]:
    """The exported pick's student, loss terms, temperature and learning rate."""
    with open(path) as fh:
        strategy = json.load(fh)["pick"]["strategy"]
    loss = strategy["loss"]
    return strategy["student"]["transforms"], loss["terms"], loss["temperature"], strategy["train"].get("lr")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/lm_demo.yaml")
    ap.add_argument("--set", action="append", default=[], help="config overrides, key=value")
    ap.add_argument("--keep", type=float, default=0.4, help="share of the teacher's layers the student keeps")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(ARMS))
    ap.add_argument("--pick", help="an export.json: adds the arm 'pick', the exported student's recipe")
    ap.add_argument("--json", help="write every run here")
    args = ap.parse_args()
    prep = prepared(args.config, args.set)
    teacher = prep.teacher_metrics["test"]
    n_teacher = sum(p.numel() for p in prep.teacher_model().parameters())
    tokens = args.steps * prep.cfg.distill.batch_size * prep.cfg.data.max_length
    print(f"teacher test perplexity {teacher['perplexity']:.3f}; {args.steps} steps (~{tokens:,} tokens) per run")
    runs: dict[str, list[dict]] = {}
    recipes = {arm: _fixed(arm, args.keep) for arm in args.arms if arm != "pick"}
    if args.pick:
        recipes["pick"] = _picked(args.pick)
        args.arms = [*[a for a in args.arms if a != "pick"], "pick"]
    for arm in args.arms:
        transforms, terms, temperature, lr = recipes[arm]
        runs[arm] = []
        for seed in args.seeds:
            runs[arm].append(run_arm(prep, transforms, terms, args.steps, seed, temperature, lr=lr))
            r = runs[arm][-1]
            print(f"  {arm} seed {seed}: test perplexity {r['perplexity']:.3f} ({r['seconds']:.0f} s)", flush=True)
        share = runs[arm][0]["parameters"] / n_teacher
        print(
            f"{arm:12s} test perplexity {summary(runs[arm], 'perplexity')}  "
            f"top-1 agreement {summary(runs[arm], 'top1_agreement')}  "
            f"parameters {share:.1%} of the teacher's  {summary(runs[arm], 'seconds')} s",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"teacher": teacher, "args": vars(args), "runs": runs}, fh, indent=2)


if __name__ == "__main__":
    main()
