"""What caching only the teacher's top-k logits costs and saves, side by side in one run:

1. bytes per token of the cache at each k against full fp16 logits;
2. the fidelity lost: KL(full teacher distribution || its top-k reconstruction, the tail spread
   evenly) on validation blocks;
3. one training step from the cache against one with the live teacher (median step time);
4. the test perplexity a student reaches with each k and with the full distribution (live
   teacher), the same student, steps and seed.

    python benchmarks/lm_topk.py --config configs/lm_demo.yaml --ks 16 64 256 --steps 100
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from lm_common import LiveTargets, prepared, run_arm


def fidelity(prep, ks: list[int], rows: int) -> dict[int, float]:
    from autodistill.tasks.causal_lm.topk import reconstruction_kl

    s = prep.encoded["validation"]
    out = {k: [] for k in ks}
    for start in range(0, min(rows, len(s)), 4):
        ids = torch.as_tensor(np.asarray(s.input_ids[start : start + 4]), dtype=torch.long)
        mask = torch.as_tensor(np.asarray(s.attention_mask[start : start + 4]), dtype=torch.long)
        with torch.inference_mode():
            logits = prep.teacher_model()(input_ids=ids, attention_mask=mask).logits[..., : prep.vocab].float()
        real = mask.bool()
        for k in ks:
            out[k].append(float(reconstruction_kl(logits[real], k)))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/lm_demo.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--ks", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--keep", type=float, default=0.4)
    ap.add_argument("--steps", type=int, default=100, help="training steps per arm; 0: sizes and fidelity only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fidelity-rows", type=int, default=16)
    ap.add_argument("--json")
    args = ap.parse_args()
    prep = prepared(args.config, args.set)
    full_bytes = 2 * prep.vocab
    print(f"vocabulary {prep.vocab:,}: full fp16 logits take {full_bytes:,} bytes per token")
    kl = fidelity(prep, args.ks, args.fidelity_rows)
    transforms = [{"name": "depth", "keep": args.keep, "choice": "importance"}]
    terms = [{"name": "fkl", "weight": 1.0}]
    index_bytes = 2 if prep.vocab <= 65536 else 4
    rows = []
    if args.steps == 0:  # sizes and fidelity only, no training
        for k in args.ks:
            per_token = k * (2 + index_bytes) + 4
            rows.append({"k": k, "bytes_per_token": per_token, "reconstruction_kl": kl[k]})
            print(f"k={k:<5d} {per_token:>6,} B/token ({full_bytes / per_token:,.0f}x smaller)  KL to full {kl[k]:.4f}")
        args.ks = []
    for k in args.ks:
        over = [f"distill.top_k={k}", *args.set]
        kprep = prep if k == prep.cfg.distill.top_k else prepared(args.config, over)
        run = run_arm(kprep, transforms, terms, args.steps, args.seed)
        per_token = k * (2 + index_bytes) + 4
        rows.append({"k": k, "bytes_per_token": per_token, "reconstruction_kl": kl[k], **run})
        print(
            f"k={k:<5d} {per_token:>6,} B/token ({full_bytes / per_token:,.0f}x smaller)  KL to full {kl[k]:.4f}  "
            f"step {run['step_seconds']:.2f} s  test perplexity {run['perplexity']:.3f}",
            flush=True,
        )
    if args.steps > 0:
        live = run_arm(prep, transforms, terms, args.steps, args.seed, targets=LiveTargets(prep, prep.vocab))
        rows.append({"k": "full (live teacher)", **live})
        print(
            f"full logits, live teacher: step {live['step_seconds']:.2f} s  test perplexity {live['perplexity']:.3f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows, "teacher": prep.teacher_metrics["test"]}, fh, indent=2)


if __name__ == "__main__":
    main()
