"""Issue 27: the default teacher against a fixed-length fine-tune of the same backbone.

Fine-tunes the config's backbone exactly as ``autodistill teacher`` does (``teacher.finetune``'s
spec: the epoch cap, one validation checkpoint an epoch, the same seed and order), but scores
every checkpoint on validation and test and keeps going to the cap, so one run gives both the
weights the default keeps (the best validation checkpoint, or where patience stopped it) and
those of a plain ``epochs``-epoch fine-tune (the last checkpoint). Prints each checkpoint.

    .venv/bin/python benchmarks/teacher_epochs.py configs/demo.yaml [--set teacher.finetune.epochs=4]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from autodistill.config import load_config
from autodistill.data import encode, load_task_data
from autodistill.evaluate import task_metrics
from autodistill.losses.base import LossDims
from autodistill.losses.composite import CompositeLoss
from autodistill.specs import LossSpec, Step
from autodistill.teacher.finetune import finetune_spec
from autodistill.teacher.load import load_classifier, load_tokenizer, resolve_source
from autodistill.train.inference import predict_logits
from autodistill.train.loop import train
from autodistill.train.stopping import Patience


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.config, args.overrides)
    data = load_task_data(cfg.data)
    source = resolve_source(cfg.teacher)
    tok = load_tokenizer(source, cfg.teacher)
    enc = {s: encode(getattr(data, s), tok, cfg.data.max_length) for s in ("train", "validation", "test")}
    torch.manual_seed(cfg.teacher.finetune.seed)
    model = load_classifier(
        source, cfg.teacher, num_labels=len(data.label_names), id2label=data.id2label, label2id=data.label2id
    )
    spec = replace(finetune_spec(cfg, len(enc["train"].labels)), patience=None)  # every epoch, to the cap
    ce = CompositeLoss(LossSpec(terms=(Step("ce"),)), LossDims(model.config.hidden_size, model.config.hidden_size))
    pad = int(tok.pad_token_id)
    rows, start = [], time.perf_counter()

    def evaluate(step: int) -> float:
        scores = {}
        for split in ("validation", "test"):
            logits = predict_logits(model, enc[split], pad, cfg.distill.eval_batch_size)
            scores[split] = task_metrics(enc[split].labels, logits.argmax(-1), cfg.data.metric)["quality"]
        rows.append({"step": step, **scores, "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
        return scores["validation"]

    train(model, ce, enc["train"], np.arange(len(enc["train"].labels)), spec, pad, evaluate=evaluate, progress=False)
    patience = cfg.teacher.finetune.patience
    end = len(rows)  # where the default's rule (train.stopping.Patience) ends the run
    if patience:
        evals = [(r["step"], r["validation"]) for r in rows]
        end = next((i for i in range(1, len(rows) + 1) if Patience(patience).check(evals[:i])), len(rows))
    kept = max(rows[:end], key=lambda r: (r["validation"], -r["step"]))  # the first best, as the loop keeps
    last = rows[-1]
    epochs = cfg.teacher.finetune.epochs
    print(f"default (patience {patience}): kept step {kept['step']} of {rows[end - 1]['step']}, "
          f"validation {kept['validation']:.4f}, test {kept['test']:.4f}")  # fmt: skip
    print(f"plain {epochs}-epoch fine-tune (the last checkpoint): validation {last['validation']:.4f}, "
          f"test {last['test']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
