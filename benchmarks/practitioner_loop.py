"""Issue 27: what a practitioner does without this tool, beside what ``autodistill distill`` does
with the same shape.

The practitioner's loop, written the way Hugging Face's own distillation examples write it: a
``Trainer`` whose loss is ``alpha * CE + (1 - alpha) * T^2 * KL(teacher || student)`` at temperature
T, a student made by keeping evenly spaced layers of the teacher (DistilBERT's initialisation),
and ``Trainer.hyperparameter_search`` with Optuna (TPE) over the kept layers, alpha, T and the
learning rate: ``--trials`` trials of one epoch on a quarter of the training split, scored on
validation; the best then retrained on the whole training split for ``--epochs`` epochs.

The tool, on the same splits and the same teacher (the config's, from the teacher home): ``autodistill
distill`` of the loop's chosen depth with its defaults (CE + KL, validation patience, best
checkpoint kept), nothing taken from the loop's search but the number of layers.

Prints test quality and seconds of both, per seed, and the medians.

    .venv/bin/python benchmarks/practitioner_loop.py configs/demo.yaml --seeds 0,1,2
        [--set data.source=builtin:sms_spam --set data.metric=macro_f1] [--out runs/practitioner.json]

``--layers 3,4,4`` skips the loop and runs the tool alone at those depths, one per seed (a recorded
run's picks), to measure a change to the tool against loop figures already taken.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from autodistill import api
from autodistill.config import load_config
from autodistill.data import stratified_subset
from autodistill.evaluate import task_metrics
from autodistill.tasks.sequence_classification.prepare import prepare


@dataclass
class KDArguments(TrainingArguments):
    """TrainingArguments with the distillation knobs, so hyperparameter_search can set them."""

    alpha: float = field(default=0.5)
    temperature: float = field(default=2.0)
    layers: int = field(default=3)


class KDTrainer(Trainer):
    def __init__(self, *args, teacher=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(**inputs)
        with torch.no_grad():
            t_logits = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        temp, alpha = self.args.temperature, self.args.alpha
        kd = F.kl_div(F.log_softmax(out.logits / temp, -1), F.softmax(t_logits / temp, -1), reduction="batchmean") * (
            temp * temp
        )
        loss = alpha * out.loss + (1 - alpha) * kd
        return (loss, out) if return_outputs else loss


def keep_layers(teacher, k: int):
    """DistilBERT's initialisation: the teacher with k evenly spaced encoder layers kept."""
    student = copy.deepcopy(teacher)
    n = teacher.config.num_hidden_layers
    keep = sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})
    layers = student.base_model.encoder.layer
    student.base_model.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    student.config.num_hidden_layers = len(keep)
    return student


class Rows(torch.utils.data.Dataset):
    def __init__(self, enc, indices=None):
        self.enc, self.idx = enc, np.arange(len(enc.labels)) if indices is None else indices

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, i):
        j = self.idx[i]
        ids = [int(x) for x in self.enc.input_ids[j]]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": int(self.enc.labels[j])}


def loop(prep, seed: int, trials: int, epochs: float, metric: str, workdir: Path) -> dict:
    teacher = prep.teacher_model().eval()
    collator = DataCollatorWithPadding(prep.teacher.tokenizer)
    train, val, test = (prep.encoded[s] for s in ("train", "validation", "test"))
    quarter = stratified_subset(train.labels, max(2, len(train.labels) // 4), seed)

    def metrics(pred):
        return {"quality": task_metrics(pred.label_ids, pred.predictions.argmax(-1), metric)["quality"]}

    def model_init(trial=None):
        # the trial's own suggestion (Optuna returns the same value to the hp_space's later call)
        return keep_layers(teacher, trial.suggest_int("layers", 2, 4) if trial is not None else 3)

    def space(trial):
        return {
            "layers": trial.suggest_int("layers", 2, 4),
            "alpha": trial.suggest_float("alpha", 0.0, 1.0),
            "temperature": trial.suggest_float("temperature", 1.0, 10.0),
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 5e-4, log=True),
        }

    def args(out: str, n_epochs: float, **extra) -> KDArguments:
        return KDArguments(
            output_dir=out, num_train_epochs=n_epochs, per_device_train_batch_size=32, per_device_eval_batch_size=128,
            eval_strategy="epoch", save_strategy="no", logging_strategy="no", report_to=[], seed=seed,
            use_cpu=True, disable_tqdm=True, warmup_steps=0.1, weight_decay=0.01, **extra,
        )  # fmt: skip

    start = time.perf_counter()
    searcher = KDTrainer(
        args=args(str(workdir / "search"), 1), model_init=model_init, train_dataset=Rows(train, quarter),
        eval_dataset=Rows(val), data_collator=collator, compute_metrics=metrics, teacher=teacher,
    )  # fmt: skip
    import optuna

    best = searcher.hyperparameter_search(
        hp_space=space, compute_objective=lambda m: m["eval_quality"], n_trials=trials, direction="maximize",
        backend="optuna", sampler=optuna.samplers.TPESampler(seed=seed),
    )  # fmt: skip
    searched = time.perf_counter() - start
    hp = best.hyperparameters
    final = KDTrainer(
        model=keep_layers(teacher, int(hp["layers"])),
        args=args(str(workdir / "final"), epochs, alpha=hp["alpha"], temperature=hp["temperature"],
                  learning_rate=hp["learning_rate"], layers=int(hp["layers"])),
        train_dataset=Rows(train), eval_dataset=Rows(val), data_collator=collator, compute_metrics=metrics,
        teacher=teacher,
    )  # fmt: skip
    final.train()
    test_q = final.evaluate(Rows(test))["eval_quality"]
    return {"hyperparameters": hp, "test": test_q, "search_seconds": round(searched, 1),
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


def tool(config: str, overrides: list[str], layers: int, seed: int, out: Path) -> dict:
    start = time.perf_counter()
    sets = [*overrides, f"student.transforms=[{{name: depth, layers: {layers}, choice: uniform}}]", f"seed={seed}",
            f"output_dir={out}", "tracking.enabled=false", "distill.mode=full"]  # fmt: skip
    result = api.distill(config, sets, progress=False)
    train = result["train"]
    return {"test": result["student"]["test"]["quality"], "steps": train["steps"], "best_step": train.get("best_step"),
            "evals": train.get("evals"), "stopped": train.get("stop_reason"), "augment": train.get("augment"),
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--out", default="runs/practitioner.json")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 when another job shares the cores)")
    ap.add_argument("--layers", help="skip the loop: the tool alone at these depths, one per seed (e.g. 3,4,4)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [*args.overrides, "tracking.enabled=false"])
    prep = prepare(cfg, progress=False)
    rows = []
    seeds = [int(s) for s in args.seeds.split(",")]
    depths = [int(n) for n in args.layers.split(",")] if args.layers else None
    if depths is not None and len(depths) != len(seeds):
        ap.error(f"--layers gives {len(depths)} depths for {len(seeds)} seeds")
    for i, seed in enumerate(seeds):
        row = {"seed": seed, "teacher_test": prep.teacher_metrics["test"]["quality"]}
        with tempfile.TemporaryDirectory() as tmp:
            if depths is None:
                row["loop"] = loop(prep, seed, args.trials, args.epochs, cfg.data.metric, Path(tmp))
            layers = depths[i] if depths is not None else int(row["loop"]["hyperparameters"]["layers"])
            row["tool"] = tool(args.config, args.overrides, layers, seed, Path(tmp) / "tool")
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    for who in ("loop", "tool") if depths is None else ("tool",):
        q = [r[who]["test"] for r in rows]
        s = [r[who]["seconds"] for r in rows]
        print(f"{who}: test {cfg.data.metric} median {statistics.median(q):.4f} ({min(q):.4f}-{max(q):.4f}), "
              f"median {statistics.median(s):.0f} s")  # fmt: skip
    print(f"teacher test {cfg.data.metric}: {rows[0]['teacher_test']:.4f}")


if __name__ == "__main__":
    main()
