"""``autodistill evaluate --model DIR`` for a classifier: any saved student or teacher folder, run with
its own tokenizer on a split of the config's data, scored by the config's metric and measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autodistill.config.run import RunConfig


def latency_seq_len(cfg: RunConfig, lengths: np.ndarray) -> int:
    """The sequence length latency is measured at: the config's, else the test split's mean."""
    return cfg.evaluate.seq_len or max(8, int(round(float(np.mean(lengths)))))


def run_evaluate(cfg: RunConfig, model_dir: str, split: str = "test", progress: bool = True) -> dict[str, Any]:
    """Evaluate any saved student or teacher folder on the config's split (default: test)."""
    from autodistill.data import encode, load_task_data
    from autodistill.evaluate import task_metrics
    from autodistill.evaluate.measure import measure_model
    from autodistill.teacher.load import label_order, load_saved_model
    from autodistill.train.inference import predict_logits

    path = Path(model_dir)
    model, tok = load_saved_model(path, cfg.teacher.trust_remote_code)
    data = load_task_data(cfg.data)
    order = label_order(model.config, data.label_names)
    enc = encode(data.split(split), tok, cfg.data.max_length)
    logits = predict_logits(model, enc, int(tok.pad_token_id), cfg.distill.eval_batch_size)[:, order]
    metrics = task_metrics(enc.labels, logits.argmax(-1), cfg.data.metric)
    meas = measure_model(model, cfg, latency_seq_len(cfg, enc.lengths))
    return {"model": str(path), "split": split, "metric": cfg.data.metric, **metrics, **meas}
