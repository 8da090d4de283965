"""Build the folder a CUDA check carries to a GPU machine that has no network and no offline assets.

    .venv/bin/python scripts/cuda_assets.py .gpucheck

Writes DIR/minilm (the offline MiniLM encoder, weights stored in bf16 to halve what travels;
the teacher loader reads them back as float32), DIR/rt (the built-in Rotten Tomatoes splits as
train/validation/test CSV files, the same examples as ``builtin:rotten_tomatoes``), DIR/cuda.yaml
(the demo config pointed at both, on CUDA, tracking off) and the optuna wheels for Python 3.12
(DIR/whl, through pip download). ``scripts/cuda_check.sh`` runs on the GPU machine with it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
import yaml
from safetensors.torch import load_file, save_file

from autodistill.config import load_config
from autodistill.data import load_task_data
from autodistill.teacher.load import BUILTIN_TEACHERS

WHEELS = ["optuna==5.1.0", "alembic==1.20.1", "SQLAlchemy==2.1.9", "Mako==1.4.3", "colorlog==6.12.0", "greenlet"]


def main(out: Path) -> None:
    import importlib.metadata as md

    pkg, rel = BUILTIN_TEACHERS["minilm"]
    src = Path(str(md.distribution(pkg).locate_file(rel)))
    model = out / "minilm"
    model.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(src / f, model / f)
    weights = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(src / "model.safetensors").items()}
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})

    cfg = load_config("configs/demo.yaml")
    data = load_task_data(cfg.data)
    (out / "rt").mkdir(exist_ok=True)
    for name in ("train", "validation", "test"):
        s = data.split(name)
        labels = [data.label_names[i] for i in s.labels]
        pd.DataFrame({"text": s.texts, "label": labels}).to_csv(out / "rt" / f"{name}.csv", index=False)

    raw = yaml.safe_load(Path("configs/demo.yaml").read_text())
    raw["teacher"]["model"] = str(model)
    raw["data"]["source"] = str(out / "rt")
    raw["distill"]["device"] = "cuda"
    raw["tracking"] = {"enabled": False}
    raw["output_dir"] = "/tmp/cudarun"
    # batch-1 latency on a GPU is launch-bound (a 3-layer student is not 3x a 6-layer teacher
    # there), so the check keeps the size limit, drops the speed one and exports the front's knee
    raw["budget"] = {"max_parameter_share": 0.4}
    raw["search"]["n_trials"] = 8
    raw["export"] = {"formats": ["hf", "onnx", "int8"]}
    (out / "cuda.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
    ]
    cmd += ["--implementation", "cp", *[a for p in platforms for a in ("--platform", p)], "-d", str(out / "whl")]
    subprocess.run([*cmd, *WHEELS], check=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".gpucheck"))
