"""End to end on tiny models: a 3-trial search on a toy CSV with a tiny BERT classifier teacher,
then ``autodistill export``: pick, final training, HF folder + card + ONNX/int8, MLflow, reload in a
fresh process with transformers alone, and an export that fails half-way leaving the earlier one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import sentiment_rows, tiny_classifier_dir, write_csv

SPACE = {
    "name": "tiny-export",
    "proxy_steps": 12,
    "proxy_examples": 64,
    "transforms": [{"name": "depth", "layers": {"int": [1, 3]}, "choice": "uniform"}],
    "loss": {"temperature": 2.0, "terms": [{"name": "ce", "weight": 0.5}, {"name": "kl", "weight": 0.5}]},
    "train": {"lr": {"float": [1.0e-3, 3.0e-3], "log": True}},
}


def _config(root: Path) -> Path:
    teacher = tiny_classifier_dir(root / "teacher")
    data = write_csv(root / "toy.csv", sentiment_rows(240))
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    cfg = {
        "output_dir": str(root / "run"),
        "seed": 0,
        "teacher": {"model": str(teacher)},
        "data": {"source": str(data), "max_length": 16, "validation_size": 0.2, "test_size": 0.2},
        "distill": {"epochs": 1, "batch_size": 16, "eval_batch_size": 64, "device": "cpu", "bf16": False},
        "evaluate": {"warmup": 1, "repeats": 2, "seq_len": 12},
        "search": {
            "space": str(space),
            "n_trials": 3,
            "startup_trials": 3,
            "sampler": "random",
            "pruning": {"enabled": False},
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One tiny search shared by the tests of this module (its own autodistill home)."""
    from autodistill.config import load_config
    from autodistill.search.run import Search

    root = tmp_path_factory.mktemp("e2e")
    old = os.environ.get("AUTODISTILL_HOME")
    os.environ["AUTODISTILL_HOME"] = str(root / "home")
    try:
        path = _config(root)
        cfg = load_config(path)
        out = Search(cfg, progress=False).run()
        yield path, cfg, out
    finally:
        if old is not None:
            os.environ["AUTODISTILL_HOME"] = old


@pytest.fixture
def home(searched, monkeypatch):
    monkeypatch.setenv("AUTODISTILL_HOME", str(Path(searched[1].output_dir).parent / "home"))


def test_export_knee_with_onnx_int8_and_mlflow(searched, home, tmp_path):
    from autodistill.export.run import run_export

    _, cfg, out = searched
    assert out["trained"] == 3 and out["front"]
    target = tmp_path / "exported"
    r = run_export(cfg, formats="onnx,int8", out=target, register="tiny-student", progress=False)
    # the knee is a point of the front, retrained at full length on the whole train split
    assert r["pick"]["trial"] in {f["number"] for f in out["front"]} and r["pick"]["on_front"]
    assert r["train"]["mode"] == "retrained" and r["train"]["examples"] == r["data"]["train"]
    files = {p.name for p in target.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "README.md",
        "pareto.png",
        "export.json",
        "autodistill_student.json",
    } <= files
    assert (target / "onnx" / "model.onnx").is_file() and (target / "onnx" / "model.int8.onnx").is_file()
    conf = json.loads((target / "config.json").read_text())
    assert conf["id2label"] == {"0": "negative", "1": "positive"}
    card = (target / "README.md").read_text()
    assert f"trial {r['pick']['trial']}" in card and "Kind: stock" in card and "pareto.png" in card
    assert f"{r['student']['test']['quality']:.4f}" in card and f"{r['teacher']['test']['quality']:.4f}" in card
    # ONNX fp32 agrees with PyTorch (checked inside); int8 measured next to it
    assert r["formats"]["onnx"]["agreement"] == 1.0
    assert set(r["formats"]["int8"]["latency_ms"]) == {"latency_ms_b1", "latency_ms_b32"}
    # the teacher timed in each runtime beside the student
    for name in ("pytorch", "onnx", "int8"):
        assert set(r["formats"][name]["teacher_latency_ms"]) == {"latency_ms_b1", "latency_ms_b32"}
    assert r["formats"]["int8"]["size_mb"] < r["formats"]["onnx"]["size_mb"]
    # `autodistill evaluate` on the exported folder (its own tokenizer) gives the card's test accuracy
    from autodistill.tasks import get_task

    ev = get_task(cfg).evaluate_folder(cfg, str(target), "test", progress=False)
    assert abs(ev["quality"] - r["student"]["test"]["quality"]) <= 0.005
    m = r["mlflow"]
    assert m["flavor"] == "transformers" and m["registered"]["name"] == "tiny-student"

    # a fresh process with transformers alone loads it and predicts the labels
    code = (
        "import sys; from transformers import pipeline\n"
        f"p = pipeline('text-classification', model={str(target)!r})\n"
        "out = p(['a good great movie', 'the film was awful and dull'])\n"
        "assert all(o['label'] in ('negative', 'positive') for o in out), out\n"
        "assert 'autodistill' not in sys.modules\n"
        "print('OK', out)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]


def test_no_retrain_reproduces_the_trial_and_a_failed_export_leaves_it(searched, home, tmp_path, monkeypatch):
    from dataclasses import replace

    import autodistill.export.run as run_mod
    import autodistill.tasks.sequence_classification.distill as distill_mod
    import autodistill.tasks.sequence_classification.onnx_formats as formats_mod
    from autodistill.export.pick import PickRule

    _, cfg, out = searched
    cfg = replace(cfg, tracking=replace(cfg.tracking, enabled=False))  # MLflow is covered above
    number = out["front"][0]["number"]
    target = tmp_path / "exp"
    asked: list = []
    real = distill_mod.distill_student
    monkeypatch.setattr(
        distill_mod, "distill_student", lambda *a, **k: asked.append(k["calibration_examples"]) or real(*a, **k)
    )
    r = run_mod.run_export(cfg, PickRule(trial=number), out=target, retrain=False, progress=False)
    assert asked == [cfg.search.calibration_examples]  # the proxy's pruning scored as the search scored it
    assert r["pick"]["trial"] == number
    assert r["train"]["mode"] == "proxy" and r["train"]["steps"] == SPACE["proxy_steps"]
    # the proxy run is rerun exactly: same validation quality as the search recorded
    assert r["proxy"]["reproduced_validation_quality"] == pytest.approx(r["proxy"]["validation_quality"], abs=1e-9)
    before = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}

    def broken(*a, **k):  # the HF files are written by now; the ONNX step dies
        raise RuntimeError("injected failure half-way through the export")

    monkeypatch.setattr(formats_mod, "onnx_formats", broken)
    with pytest.raises(RuntimeError, match="injected"):
        run_mod.run_export(cfg, PickRule(trial=number), formats="onnx", out=target, retrain=False, progress=False)
    after = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}
    assert after == before
    assert not list(tmp_path.glob(".exp.tmp-*"))


def test_cli_rule_nobody_meets_names_the_flag(searched, home, capsys):
    from autodistill.cli import main

    path, _, _ = searched
    code = main(["export", str(path), "--max-params", "10", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--max-params" in err and "Closest trials" in err and "trial " in err
    code = main(["export", str(path), "--candidates", "2", "--quiet"])  # the knee has no runners-up
    err = capsys.readouterr().err
    assert code == 2 and "'--candidates'" in err


def test_the_config_export_section_is_the_default_and_cli_flags_replace_its_rule(searched, home, tmp_path, capsys):
    from autodistill.cli import main

    path, _, out = searched
    first, second = sorted(r["number"] for r in out["front"])[:2]
    base = [
        "tracking.enabled=false",
        f"export.trial={first}",
        "export.retrain=false",
        f"export.out={tmp_path / 'from-config'}",
    ]
    sets = [a for o in base for a in ("--set", o)]
    assert main(["export", str(path), *sets, "--quiet"]) == 0
    done = json.loads((tmp_path / "from-config" / "export.json").read_text())
    assert done["pick"]["trial"] == first and "not retrained" in done["train"]["mode_text"]
    assert done["pick"]["rule"] == f"the config's export section (trial: {first})"
    # a rule flag replaces the config's rule (here its trial); the rest of the section still holds
    assert main(["export", str(path), *sets, "--trial", str(second), "--quiet"]) == 0
    done = json.loads((tmp_path / "from-config" / "export.json").read_text())
    assert done["pick"]["trial"] == second and "not retrained" in done["train"]["mode_text"]
    assert done["pick"]["rule"] == f"--trial {second}"
    capsys.readouterr()
    # a configured rule nobody meets says where it came from
    assert main(["export", str(path), "--set", "export.max_params=10", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Closest trials" in err and "config's 'export' section" in err
    # the section's own checks name its keys
    assert main(["export", str(path), "--set", "export.min_speedup=0", "--quiet"]) == 2
    assert "'export.min_speedup'" in capsys.readouterr().err


def test_python_api_pareto_and_export_by_speedup(searched, home, tmp_path):
    from autodistill import api
    from autodistill.export.pick import parameters, quality, speedup

    path, _, out = searched
    overrides = ["tracking.enabled=false"]
    front = api.pareto(path, overrides=overrides)
    assert [r["number"] for r in front["front"]] == [r["number"] for r in out["front"]]
    assert front["study"] == "run" and any(f.endswith("pareto.json") for f in front["files"])
    # every trained trial's speedup as the search measured it; the fastest one sets the bar
    import optuna

    from autodistill.export.run import study_records

    study = optuna.load_study(study_name="run", storage=f"sqlite:///{Path(path).parent / 'run' / 'study.db'}")
    records, _ = study_records(study, ["quality", "parameters"])
    bar = max(speedup(t) for t in records) * 0.999
    r = api.export(path, min_speedup=bar, retrain=False, out=tmp_path / "fast", overrides=overrides, progress=False)
    # the fastest trial and any timed within 0.1% of it meet the bar; the best of those is picked
    eligible = [t for t in records if speedup(t) >= bar]
    best = sorted(eligible, key=lambda t: (-quality(t), parameters(t)))[0]
    assert r["pick"]["trial"] == best["number"]
    assert (tmp_path / "fast" / "config.json").exists() and "--min-speedup" in r["pick"]["rule"]
    with pytest.raises(TypeError, match="overrides"):
        api.load(api.load(path), overrides)


def test_quickstart_notebook_runs_top_to_bottom(searched, home, tmp_path, monkeypatch):
    """Every code cell of notebooks/quickstart.ipynb, in order, in one namespace, on the tiny study."""
    import matplotlib

    matplotlib.use("Agg")
    path, cfg, _ = searched
    monkeypatch.setenv("AUTODISTILL_CONFIG", str(path))
    monkeypatch.chdir(tmp_path)
    notebook = json.loads((Path(__file__).parents[2] / "notebooks" / "quickstart.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    assert len(cells) >= 6
    namespace: dict = {}
    for i, source in enumerate(cells):
        exec(compile(source, f"quickstart.ipynb cell {i}", "exec"), namespace)  # noqa: S102
    exported = namespace["exported"]
    assert Path(exported["path"]) == Path(cfg.output_dir) / "export-notebook"
    assert (Path(exported["path"]) / "onnx" / "model.onnx").exists()
    assert namespace["logits"].shape == (1, 2)


def test_final_training_with_augmented_copies_says_so_on_the_card(searched, home, tmp_path):
    from autodistill import api

    path, _, _ = searched
    overrides = ["tracking.enabled=false", "distill.augment.ratio=1"]
    r = api.export(path, trial=0, out=tmp_path / "aug", overrides=overrides, progress=False)
    assert r["train"]["mode"] == "retrained" and r["train"]["augment"]["ratio"] == 1.0
    card = (tmp_path / "aug" / "README.md").read_text()
    assert "teacher-labelled augmented copies" in card and "ratio 1" in card
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join(f"unseen text {i}" for i in range(30)), encoding="utf-8")
    more = [*overrides, f"data.unlabeled=['{extra}']"]
    r = api.export(path, trial=0, out=tmp_path / "more", overrides=more, progress=False)
    assert r["train"]["augment"]["unlabeled"] == {"sources": [str(extra)], "texts": 30}
    assert f"50% of them starting from 30 unlabeled texts ({extra})" in (tmp_path / "more" / "README.md").read_text()
    plain = api.export(path, trial=0, out=tmp_path / "plain", overrides=[overrides[0], "distill.augment.ratio=0"],
                       progress=False)  # fmt: skip
    assert plain["train"]["augment"] is None
    assert "augmented" not in (tmp_path / "plain" / "README.md").read_text()
    # the default (ratio null) turns the copies on for this small training split, and says why
    auto = api.export(path, trial=0, out=tmp_path / "auto", overrides=overrides[:1], progress=False)
    assert auto["train"]["augment"]["ratio"] == 1.0 and "under small_train (5,000)" in auto["train"]["augment"]["why"]
    assert "under small_train (5,000)" in (tmp_path / "auto" / "README.md").read_text()
    # the proxy rerun (--no-retrain) stays as the search ran it: no copies unless in_search
    proxy = api.export(path, trial=0, retrain=False, out=tmp_path / "proxy", overrides=overrides, progress=False)
    assert proxy["train"]["augment"] is None
    recorded = proxy["proxy"]["validation_quality"]
    assert proxy["proxy"]["reproduced_validation_quality"] == pytest.approx(recorded, abs=1e-9)


def test_candidates_are_trained_in_full_and_the_best_validation_is_kept(searched, home, tmp_path):
    from autodistill import api
    from autodistill.export.pick import PickError

    path, _, _ = searched
    overrides = ["tracking.enabled=false"]
    r = api.export(path, max_params=10**9, candidates=2, out=tmp_path / "cand", overrides=overrides, progress=False)
    rows = r["pick"]["candidates"]
    assert len(rows) == 2 and rows[0]["proxy_validation"] >= rows[1]["proxy_validation"]
    best = max(rows, key=lambda c: c["final_validation"])  # ties go to the first (better proxy)
    assert r["pick"]["trial"] == best["trial"]
    assert r["student"]["validation"]["quality"] == pytest.approx(best["final_validation"])
    assert "--candidates 2" in r["pick"]["rule"]
    card = (tmp_path / "cand" / "README.md").read_text()
    assert "were each trained in full" in card
    n, q = r["pick"]["validation_examples"], best["final_validation"]
    assert isinstance(n, int) and n > 0  # the validation split's size is recorded with the pick
    # how finely validation tells trials apart, and which trials it cannot tell from the pick
    res = r["pick"]["resolution"]
    proxy_q = r["pick"]["objectives"]["quality"]
    assert res["examples"] == n and res["standard_error"] == pytest.approx(
        (proxy_q * (1 - proxy_q) / n) ** 0.5, rel=1e-3
    )
    assert all(abs(c["quality"] - proxy_q) <= 2 * res["standard_error"] + 1e-9 for c in res["close"])
    se = 100 * (max(q * (1 - q), 1e-12) / n) ** 0.5
    assert f"On {n:,} validation examples an accuracy of {q:.2f} has a standard error of about {se:.1f}" in card
    with pytest.raises(PickError, match="--no-retrain"):
        api.export(path, max_params=10**9, candidates=2, retrain=False, out=tmp_path / "x", overrides=overrides)
    assert not (tmp_path / "x").exists()


def test_final_training_with_a_weight_average_says_so_on_the_card(searched, home, tmp_path):
    from autodistill import api

    path, _, _ = searched
    overrides = ["tracking.enabled=false", "distill.ema=0.9"]
    r = api.export(path, trial=0, out=tmp_path / "ema", overrides=overrides, progress=False)
    assert r["train"]["mode"] == "retrained" and r["train"]["spec"]["ema"] == 0.9
    card = (tmp_path / "ema" / "README.md").read_text()
    assert "moving average over the steps (decay 0.9, distill.ema)" in card
    plain = api.export(path, trial=0, out=tmp_path / "plain", overrides=overrides[:1], progress=False)
    assert plain["train"]["spec"]["ema"] == 0.0
    assert "moving average" not in (tmp_path / "plain" / "README.md").read_text()


def test_final_training_with_qat_says_from_which_step_it_trained_fake_quantised(searched, home, tmp_path):
    """distill.qat reaches the export's final training: the record and the card say from which step
    it trained on the int8 grids, and the int8 graph is written as usual."""
    from autodistill import api
    from autodistill.specs import TrainSpec
    from autodistill.train.loop import qat_start

    path, _, _ = searched
    overrides = ["tracking.enabled=false", "distill.qat=0.5"]
    r = api.export(path, trial=0, out=tmp_path / "qat", formats="int8", overrides=overrides, progress=False)
    t = r["train"]
    assert t["mode"] == "retrained" and t["spec"]["qat"] == 0.5 and t["steps"] == t["spec"]["steps"]
    assert t["qat_from_step"] == qat_start(TrainSpec(**t["spec"])) > 1
    card = (tmp_path / "qat" / "README.md").read_text()
    assert f"from step {t['qat_from_step']} on, its Linear layers and embeddings trained" in card
    assert (tmp_path / "qat" / "onnx" / "model.int8.onnx").is_file()
