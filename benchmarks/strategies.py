"""Predeclared: each distillation strategy against CE + KL at the same student and steps, on the
built-in Rotten Tomatoes set, seeds 0..N-1, medians with the per-seed values beside them.

- Two teachers: the default teacher (MiniLM fine-tuned, teacher.finetune.seed 0) and a second
  fine-tune of it (seed 1), combined by ``mean`` (teacher.extra), against each alone; 3-layer
  uniform student (cut from the first teacher), CE + KL. Met when the pair's median test accuracy
  is at least the better single teacher's.
- Teacher assistant: a 2-layer student, direct from the teacher against through a 4-layer assistant
  (distill.assistant: 4; the assistant distilled once for ``--assistant-steps``). Met when the
  assistant arm's median test accuracy is at least the direct arm's.
- Self-distillation and progressive weighting (not predeclared by the issue, run after): CE + KL
  against CE + KL + self_kl (the weight average, weight 0.5); CE + KL + hidden MSE with static
  weights against the same with ``progressive`` (scope all). 3-layer student.
- Quantisation-aware: the 3-layer student of the first arm, trained with distill.qat 0.5 against
  without; both exported to ONNX and quantised to int8 by the export's own quantiser, test accuracy
  of the int8 file in onnxruntime at batch 32. Met when QAT's median int8 accuracy is at least
  post-training quantisation's.

    .venv/bin/python benchmarks/strategies.py [--steps 500] [--seeds 3] [--parts teachers,qat,assistant,self]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import median, prepared  # noqa: E402

from autodistill.specs import LossSpec, Step, StudentSpec  # noqa: E402
from autodistill.tasks.sequence_classification.distill import distill_student, shipped_quality  # noqa: E402
from autodistill.tasks.sequence_classification.prepare import Prepared, train_spec  # noqa: E402

CE_KL = LossSpec((Step("ce", {"weight": 0.5}), Step("kl", {"weight": 0.5})), temperature=2.0)
SELF = LossSpec((*CE_KL.terms, Step("self_kl", {"weight": 0.5})), temperature=2.0)
HIDDEN = LossSpec((*CE_KL.terms, Step("hidden_mse", {"weight": 1.0})), temperature=2.0)
PROGRESSIVE = LossSpec(HIDDEN.terms, temperature=2.0, weighting=Step("progressive", {"scope": "all"}))
SECOND = ["teacher.finetune.seed=1"]
FIRST: dict[int, dict] = {}  # seed -> the first teacher's 3-layer CE + KL row (the QAT part's baseline too)
PAIR = ["teacher.extra=[{model: builtin:minilm, finetune: {seed: 1}}]", "distill.combine=mean"]


def depth(layers: int) -> StudentSpec:
    return StudentSpec((Step("depth", {"layers": layers, "choice": "uniform"}),))


def int8_accuracy(prep: Prepared, build: Any) -> float:
    """Test accuracy of the student's int8 ONNX file (the export's quantiser) in onnxruntime, batch 32."""
    from autodistill.evaluate import task_metrics
    from autodistill.tasks.sequence_classification.distill import shipped_split
    from autodistill.tasks.sequence_classification.onnx import export_onnx, ort_logits, quantize_int8, session

    enc, pad_id = shipped_split(prep, build, "test")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, q = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        export_onnx(build.export_model().to("cpu").eval(), fp32)
        quantize_int8(fp32, q)
        logits = ort_logits(session(q, 2), enc, pad_id, 32)
    return task_metrics(enc.labels, logits.argmax(-1), prep.cfg.data.metric)["quality"]


def arm(
    prep: Prepared, student: StudentSpec, steps: int, seed: int, int8: bool = False, loss: LossSpec = CE_KL, **spec: Any
) -> dict:
    """One student for ``steps`` on the whole train split (no checkpoint kept but the last)."""
    base = train_spec(prep.cfg, len(prep.encoded["train"].labels))
    run_spec = replace(base, steps=steps, seed=seed, eval_every=None, patience=None, **spec)
    start = time.perf_counter()
    run = distill_student(prep, student, loss, run_spec, keep_best=False)
    row = {
        "validation": run.validation["quality"],
        "test": shipped_quality(prep, run.build, "test")["quality"],
        "seconds": time.perf_counter() - start,
        "targets": run.targets,
    }
    if int8:
        row["int8"] = int8_accuracy(prep, run.build)
    return row


def show(name: str, rows: list[dict], key: str = "test") -> float:
    m = median(rows, key)
    seeds = " ".join(f"{r[key]:.4f}" for r in rows)
    print(
        f"  {name:<34}{median(rows, 'validation'):>8.4f}{m:>8.4f}{median(rows, 'seconds'):>7.0f}   {seeds}", flush=True
    )
    return m


def verdict(ok: bool, what: str) -> None:
    print(f"  -> {'met' if ok else 'NOT met'}: {what}", flush=True)


def teachers(args: argparse.Namespace, seeds: range) -> None:
    first, second = prepared(args.config, []), prepared(args.config, SECOND)
    pair = prepared(args.config, PAIR)
    t0, t1 = (p.teacher_metrics["test"]["quality"] for p in (first, second))
    print(f"\ntwo teachers (test accuracy): first {t0:.4f}, second {t1:.4f}, pair (mean) "
          f"{pair.teacher_metrics['test']['quality']:.4f}; 3-layer student, {args.steps} steps")  # fmt: skip
    print(f"  {'arm':<34}{'val':>8}{'test':>8}{'s/run':>7}   per-seed test")
    FIRST.update({s: arm(first, depth(3), args.steps, s, int8=True) for s in seeds})
    a = show("first teacher alone", [FIRST[s] for s in seeds])
    b = show("second teacher alone", [arm(second, depth(3), args.steps, s) for s in seeds])
    c = show("both, combined by mean", [arm(pair, depth(3), args.steps, s) for s in seeds])
    verdict(c >= max(a, b), f"the pair {c:.4f} against the better single teacher {max(a, b):.4f}")


def assistant(args: argparse.Namespace, seeds: range) -> None:
    prep = prepared(args.config, [f"distill.max_steps={args.assistant_steps}"])  # the assistant's length
    print(
        f"\nteacher assistant: 2-layer student, {args.steps} steps; a 4-layer assistant ({args.assistant_steps} steps)"
    )
    print(f"  {'arm':<34}{'val':>8}{'test':>8}{'s/run':>7}   per-seed test")
    direct = show("direct from the teacher", [arm(prep, depth(2), args.steps, s) for s in seeds])
    rows = [arm(prep, depth(2), args.steps, s, assistant=4) for s in seeds]
    a = rows[0]["targets"]["assistant"]
    print(
        f"  (the assistant: validation {a['validation']:.4f}, test {a['test']:.4f}, "
        f"{a['steps']} steps, {a['seconds']:.0f} s)"
    )
    via = show("through the 4-layer assistant", rows)
    verdict(via >= direct, f"through the assistant {via:.4f} against direct {direct:.4f}")


def qat(args: argparse.Namespace, seeds: range) -> None:
    prep = prepared(args.config, [])
    print(f"\nquantisation-aware: 3-layer student, {args.steps} steps; int8 ONNX test accuracy at batch 32")
    print(f"  {'arm':<34}{'val':>8}{'int8':>8}{'s/run':>7}   per-seed int8 (fp32 test)")
    arms = {
        "post-training int8 (qat 0)": [FIRST.get(s) or arm(prep, depth(3), args.steps, s, int8=True) for s in seeds],
        "quantisation-aware (qat 0.5)": [arm(prep, depth(3), args.steps, s, int8=True, qat=0.5) for s in seeds],
    }
    got = {}
    for name, rows in arms.items():
        got[name] = show(name, rows, "int8")
        print(f"  {'':<34}fp32 test median {median(rows, 'test'):.4f}")
    ptq, aware = got.values()
    verdict(aware >= ptq, f"QAT's int8 {aware:.4f} against post-training int8 {ptq:.4f}")


def self_and_progressive(args: argparse.Namespace, seeds: range) -> None:
    prep = prepared(args.config, [])
    print(f"\nself-distillation and progressive weighting: 3-layer student, {args.steps} steps")
    print(f"  {'arm':<34}{'val':>8}{'test':>8}{'s/run':>7}   per-seed test")
    base = show("CE + KL", [FIRST.get(s) or arm(prep, depth(3), args.steps, s) for s in seeds])
    own = show("CE + KL + self_kl (average, 0.5)", [arm(prep, depth(3), args.steps, s, loss=SELF) for s in seeds])
    verdict(own >= base, f"with self_kl {own:.4f} against CE + KL {base:.4f}")
    static = show("CE + KL + hidden MSE, static", [arm(prep, depth(3), args.steps, s, loss=HIDDEN) for s in seeds])
    prog = show("the same, progressive", [arm(prep, depth(3), args.steps, s, loss=PROGRESSIVE) for s in seeds])
    verdict(prog >= static, f"progressive {prog:.4f} against static {static:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--assistant-steps", type=int, default=800)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--parts", default="teachers,qat,assistant,self")
    args = ap.parse_args()
    seeds = range(args.seeds)
    parts = {"teachers": teachers, "assistant": assistant, "qat": qat, "self": self_and_progressive}
    for name in args.parts.split(","):
        parts[name](args, seeds)


if __name__ == "__main__":
    main()
