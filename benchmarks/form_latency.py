"""Batch-1 latency of student forms against the teacher, in PyTorch and in onnxruntime (run by hand).

    python benchmarks/form_latency.py configs/demo.yaml [--forms recipe,2,4h50f25] [--repeats 50]

Latency depends on a student's shape, not on its training, so each form of
``benchmarks/student_forms.py`` is built from the teacher untrained, exported to ONNX, and timed
with the teacher at batch 1 (1 thread, the config's latency sequence length, random ids), all
models' passes interleaved so that load from elsewhere falls on them alike. Prints each form's
parameters as a share of the teacher's and its speedup over the teacher in each runtime. A form
saved as the registered architecture is timed twice: as it ships (its last layer computes only the
first position at inference) and with every position computed (``NAME/all``), so the table shows
what that inference path is worth.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from student_forms import FORMS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--forms", default=",".join(FORMS), help=f"comma-separated, of {', '.join(FORMS)}")
    ap.add_argument("--repeats", type=int, default=50, help="timed passes per model and runtime (after 5 warm-up)")
    args = ap.parse_args(argv)
    names = args.forms.split(",")
    unknown = [f for f in names if f not in FORMS]
    if unknown:
        ap.error(f"--forms: unknown form(s) {unknown}; choose from {list(FORMS)}")

    import torch

    from autodistill.config import load_config
    from autodistill.specs import Step, StudentSpec
    from autodistill.student.build import build_student
    from autodistill.tasks.sequence_classification.evaluate import latency_seq_len
    from autodistill.tasks.sequence_classification.onnx import export_onnx, session
    from autodistill.tasks.sequence_classification.prepare import prepare

    torch.set_num_threads(1)
    cfg = load_config(args.config, [])
    prep = prepare(cfg, progress=False)
    teacher = prep.teacher_model().eval()
    seq_len = latency_seq_len(cfg, prep.encoded["test"].lengths)
    models = {"teacher": teacher}
    for name in names:
        spec = StudentSpec(tuple(Step(n, o) for n, o in FORMS[name]))
        models[name] = build_student(teacher, spec, prep.build_context()).export_model().eval()
        if getattr(models[name].config, "first_token_last_layer", False):
            full = copy.deepcopy(models[name])
            full.config.first_token_last_layer = False
            models[f"{name}/all"] = full
    tmp = Path(tempfile.mkdtemp())
    sessions = {}
    for name, model in models.items():
        export_onnx(model, tmp / f"{name}.onnx")
        sessions[name] = session(tmp / f"{name}.onnx", threads=1)

    ids = torch.randint(1000, 2000, (1, seq_len), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    feeds = {
        n: {
            i.name: {"input_ids": ids, "attention_mask": mask}.get(i.name, torch.zeros_like(ids)).numpy()
            for i in s.get_inputs()
        }
        for n, s in sessions.items()
    }
    times: dict[str, dict[str, list[float]]] = {n: {"torch": [], "ort": []} for n in models}
    with torch.inference_mode():
        for r in range(5 + args.repeats):
            for n, model in models.items():
                start = time.perf_counter()
                sessions[n].run(["logits"], feeds[n])
                mid = time.perf_counter()
                model(input_ids=ids, attention_mask=mask)
                end = time.perf_counter()
                if r >= 5:
                    times[n]["ort"].append(mid - start)
                    times[n]["torch"].append(end - mid)
    med = {n: {k: statistics.median(v) * 1000 for k, v in t.items()} for n, t in times.items()}
    total = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    print(f"batch 1, 1 thread, seq len {seq_len}, {args.repeats} interleaved passes per model and runtime")
    print(f"{'form':<14}{'parameters':>13}{'share':>7}{'torch ms':>10}{'speedup':>9}{'ort ms':>9}{'speedup':>9}")
    for n in models:
        m = med[n]
        print(
            f"{n:<14}{total[n]:>13,}{total[n] / total['teacher']:>7.3f}{m['torch']:>10.2f}"
            f"{med['teacher']['torch'] / m['torch']:>8.2f}x{m['ort']:>9.2f}{med['teacher']['ort'] / m['ort']:>8.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
