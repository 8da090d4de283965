"""End to end on tiny in-process assets: a backbone that the tool fine-tunes into a teacher,
a CSV task, one distillation through the CLI, then evaluate on the saved student."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import sentiment_rows, tiny_backbone_dir, write_csv

from autodistill.cli import main


@pytest.fixture
def tiny_run(tmp_path):
    backbone = tiny_backbone_dir(tmp_path / "backbone")
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(600))
    cfg = {
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(backbone), "finetune": {"epochs": 5, "lr": 2e-3, "batch_size": 16}},
        "data": {"source": str(data), "max_length": 32},
        "student": {"transforms": [{"name": "depth", "layers": 2, "choice": "uniform"}]},
        "distill": {"mode": "full", "epochs": 2, "lr": 1e-3, "batch_size": 16, "eval_batch_size": 64},
        "evaluate": {"batch_sizes": [1, 4], "repeats": 2, "warmup": 1},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp_path


def count_copies(monkeypatch) -> list[int]:
    """A list that receives the number of augmented copies of every batch the Augmenter makes."""
    from autodistill.data.augment import Augmenter

    calls: list[int] = []
    original = Augmenter.__call__

    def counted(self, batch, step):
        out = original(self, batch, step)
        calls.append(len(out["labels"]))
        return out

    monkeypatch.setattr(Augmenter, "__call__", counted)
    return calls


def test_teacher_distill_evaluate(tiny_run, capsys):
    path, tmp = tiny_run
    assert main(["teacher", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    # how long it trained (at most the 5 epochs, one checkpoint each), the curve, then its quality
    assert re.search(r"fine-tuned \d+ steps \([1-5]\.0 epochs\), best at step \d+", out), out
    assert "validation accuracy at each checkpoint: " in out
    assert re.search(r"validation accuracy [01]\.\d{4} \(accuracy", out), out
    assert re.search(r"test accuracy [01]\.\d{4} \(accuracy", out), out
    assert main(["distill", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test recall per class" in out and "of the teacher's test accuracy; teacher trained" in out
    result = json.loads((tmp / "out" / "result.json").read_text())
    s, t = result["student"], result["teacher"]
    # recall per class beside the teacher's, averaging (equal test classes) to the accuracies above
    c = result["classes"]
    assert c["classes"] == ["negative", "positive"] and sum(c["support"]) > 0 and c["dropped"] == []
    assert sum(r * n for r, n in zip(c["student_recall"], c["support"])) / sum(c["support"]) == pytest.approx(
        s["test"]["accuracy"], abs=1e-6
    )
    # the toy task is learnable: the teacher and the student both clear chance by a wide margin
    assert t["test"]["accuracy"] > 0.8
    assert s["test"]["accuracy"] > 0.7
    assert s["parameters"]["total"] < t["parameters"]["total"]
    assert result["relative"]["parameter_ratio"] < 1
    assert s["latency_ms"]["latency_ms_b1"] > 0
    assert result["labels"] == ["negative", "positive"]
    assert result["train"]["warmup_steps"] == 0  # distill.prune_after is off by default
    assert result["fingerprints"]["teacher"] and result["versions"]["torch"]
    student_dir = tmp / "out" / "student"
    config = json.loads((student_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["num_hidden_layers"] == 2
    assert list(student_dir.glob("*.safetensors"))
    # a fresh process loads it with transformers alone and `evaluate` reproduces the accuracy
    code = (
        "import sys; from transformers import AutoModelForSequenceClassification as M, pipeline;"
        f"m = M.from_pretrained(r'{student_dir}'); p = pipeline('text-classification', model=r'{student_dir}');"
        "print(p('a great movie')[0]['label'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] in ("negative", "positive")
    capsys.readouterr()
    assert main(["evaluate", str(path), "--model", str(student_dir), "--json", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert abs(ev["accuracy"] - s["test"]["accuracy"]) < 0.005


def test_teacher_is_reused_and_not_retrained_by_student_settings(tiny_run, capsys):
    path, tmp = tiny_run
    from autodistill.api import teacher as run_teacher
    from autodistill.config import load_config

    first = run_teacher(load_config(path), progress=False)
    # the run's seed is the student's: a second student seed reuses the teacher
    student_settings = ["student.transforms[0].layers=1", "distill.lr=5e-4", "seed=3"]
    again = run_teacher(load_config(path, student_settings), progress=False)
    assert again["path"] == first["path"] and again["fingerprint"] == first["fingerprint"]
    changed = run_teacher(load_config(path, ["teacher.finetune.epochs=1"]), progress=False)
    assert changed["fingerprint"] != first["fingerprint"]
    reseeded = run_teacher(load_config(path, ["teacher.finetune.seed=1"]), progress=False)
    assert reseeded["fingerprint"] not in (first["fingerprint"], changed["fingerprint"])


def test_bad_config_fails_before_any_work(tiny_run, capsys):
    path, tmp = tiny_run
    assert main(["distill", str(path), "--set", "student.transforms[0].name=shrink", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'student.transforms[0].name'" in err and "depth" in err
    assert main(["distill", str(path), "--set", "distill.loss.terms[1].bogus=3", "--quiet"]) == 2
    assert "'distill.loss.terms[1].bogus'" in capsys.readouterr().err
    assert main(["distill", str(path), "--set", "distill.loss.weighting.name=magic", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'distill.loss.weighting.name'" in err and "uncertainty" in err
    assert not (tmp / "out").exists()


def test_augmented_copies_join_full_runs_and_can_be_turned_off(tiny_run, monkeypatch):
    from autodistill.config import load_config
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, _ = tiny_run
    cfg = load_config(path, ["distill.augment.ratio=1", "distill.max_steps=12"])
    prep = prepare(cfg, progress=False)
    calls = count_copies(monkeypatch)
    student, loss = StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss)
    run = distill_student(prep, student, loss)
    assert run.train.steps == 12 and calls == [16] * 12  # one copy per real example, every step
    assert run.validation["accuracy"] > 0.6
    calls.clear()
    off = distill_student(prep, student, loss, augment=False)
    assert off.train.steps == 12 and calls == []
    assert off.train.history[-1]["loss"] != run.train.history[-1]["loss"]


def test_unlabeled_texts_join_the_copies_labelled_by_the_teacher(tiny_run, monkeypatch):
    from autodistill.config import load_config
    from autodistill.data.augment import Augmenter
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, tmp = tiny_run
    extra = tmp / "extra.txt"
    extra.write_text("\n".join(f"an unseen review number {i} of some film" for i in range(40)), encoding="utf-8")
    sets = [f"data.unlabeled=['{extra}']", "distill.augment.ratio=1", "distill.augment.unlabeled_share=1"]
    edits = ["distill.augment.splice_prob=0", "distill.augment.mask_prob=0", "distill.augment.replace_prob=0"]
    cfg = load_config(path, [*sets, *edits, "distill.max_steps=3"])
    prep = prepare(cfg, progress=False)
    found, pool = prep.unlabeled()
    assert len(found.texts) == 40 and len(pool) == 40
    pool_rows = {tuple(p.tolist()) for p in pool}
    sep = prep.teacher.tokenizer.sep_token_id
    seen = []
    original = Augmenter.__call__

    def spy(self, batch, step):
        out = original(self, batch, step)
        ids = [tuple(r[m == 1].tolist()) for r, m in zip(out["input_ids"], out["attention_mask"])]
        width = batch["input_ids"].shape[1]
        cut = {r if len(r) <= width else r[: width - 1] + (sep,) for r in pool_rows}  # the batch's width
        seen.append(sum(r in cut for r in ids) / len(ids))
        return out

    monkeypatch.setattr(Augmenter, "__call__", spy)
    run = distill_student(prep, StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss))
    assert run.train.steps == 3 and len(seen) == 3
    assert seen == [1.0, 1.0, 1.0]  # every copy is an unlabeled text, as tokenized (no edits asked)


def test_neighbour_copies_swap_tokens_for_their_nearest_in_the_teachers_embeddings(tiny_run, monkeypatch):
    from autodistill.config import load_config
    from autodistill.data.augment import Augmenter, nearest_tokens
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, _ = tiny_run
    edits = ["distill.augment.splice_prob=0", "distill.augment.mask_prob=0", "distill.augment.replace_prob=0"]
    sets = ["distill.augment.ratio=1", "distill.augment.neighbour_prob=1", "distill.augment.neighbours=2"]
    cfg = load_config(path, [*sets, *edits, "distill.max_steps=2"])
    prep = prepare(cfg, progress=False)
    seen = []
    original = Augmenter.__call__

    def spy(self, batch, step):
        out = original(self, batch, step)
        seen.append((self.neighbours, batch, out))
        return out

    monkeypatch.setattr(Augmenter, "__call__", spy)
    run = distill_student(prep, StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss))
    assert run.train.steps == 2 and len(seen) == 2
    table, batch, out = seen[0]
    tok = prep.teacher.tokenizer
    embeddings = prep.teacher_model().get_input_embeddings().weight
    allowed = prep.token_context().token_counts > 0
    allowed[list(tok.all_special_ids)] = False
    expected = nearest_tokens(embeddings, allowed, tok.convert_ids_to_tokens(list(range(len(embeddings)))), 2)
    assert np.array_equal(table, expected)  # built from the teacher's own input embeddings
    specials = set(tok.all_special_ids)
    real = {i for row in batch["input_ids"].tolist() for i in row} - specials
    copies = {i for row, m in zip(out["input_ids"], out["attention_mask"]) for i in row[m == 1].tolist()} - specials
    neighbours = {int(j) for i in real for j in table[i] if j >= 0}
    assert copies and copies <= neighbours | real and copies - real  # every token swapped where it could be


def test_attention_targets_run_the_shared_teacher_eager_only_while_they_are_made(tiny_run):
    from autodistill.config import load_config
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, _ = tiny_run
    terms = "distill.loss.terms=[{name: kl}, {name: attention_mse, weight: 1.0}]"
    cfg = load_config(path, ["distill.augment.ratio=1", "distill.max_steps=2", terms])
    prep = prepare(cfg, progress=False)
    teacher = prep.teacher_model()
    teacher.set_attn_implementation("sdpa")
    run = distill_student(prep, StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss))
    assert run.train.steps == 2 and prep.outputs.splits["train"].attention  # maps were cached and the copies labelled
    assert teacher.config._attn_implementation == "sdpa"  # the shared teacher runs as users run it again


def test_prune_after_warms_the_student_up_then_prunes_it_and_trains_on(tiny_run):
    from autodistill.config import load_config
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, _ = tiny_run
    form = "student.transforms=[{name: depth, layers: 2, choice: uniform}, {name: ffn, ratio: 0.5}]"
    cfg = load_config(path, [form, "distill.max_steps=8", "distill.prune_after=0.5", "distill.eval_every=2"])
    prep = prepare(cfg, progress=False)
    student, loss = StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss)
    seen = []
    run = distill_student(prep, student, loss, evaluate=lambda step, q: seen.append(step))
    assert run.train.steps == 8 and [h["step"] for h in run.train.history] == list(range(1, 9))
    assert run.warmup_steps == 4
    from autodistill.export.run import _warmup_text  # the card's training line says so

    assert "trained 4 steps before ffn applied, their choices scored on its own weights" in _warmup_text(run)
    assert seen == [6, 8]  # the checkpoints of the pruned student, counted on from the warm-up's 4 steps
    teacher_ffn = prep.teacher_model().config.intermediate_size
    assert {layer.ffn for layer in run.build.shape.layers} == {teacher_ffn // 2}
    assert [t["name"] for t in run.build.resolved["transforms"]] == ["depth", "ffn"]
    once = distill_student(prep, student, loss, spec=None)  # deterministic on CPU: --no-retrain relies on it
    assert once.validation == run.validation
    assert once.build.resolved == run.build.resolved
    plain = load_config(path, [form, "distill.max_steps=8", "distill.eval_every=2"])
    off = distill_student(prepare(plain, progress=False), student, loss)
    assert off.warmup_steps == 0 and off.train.history[-1]["loss"] != run.train.history[-1]["loss"]


def test_pruning_scores_on_as_many_examples_as_configured(tiny_run, monkeypatch):
    """student.calibration_examples sets how many training examples the FFN scores see; a caller
    (the search) can ask for another number; more than the training split holds means all of it."""
    from autodistill.config import load_config
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.student import importance
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, _ = tiny_run
    scored: list[int] = []
    real = importance.ffn_scores

    def spy(model, batches, *args):
        scored.append(sum(int(b["input_ids"].shape[0]) for b in batches))
        return real(model, batches, *args)

    monkeypatch.setattr(importance, "ffn_scores", spy)
    form = "student.transforms=[{name: depth, layers: 2, choice: uniform}, {name: ffn, ratio: 0.5}]"
    cfg = load_config(path, [form, "distill.max_steps=2", "student.calibration_examples=96"])
    prep = prepare(cfg, progress=False)
    student, loss = StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss)
    distill_student(prep, student, loss)
    distill_student(prep, student, loss, calibration_examples=40)
    distill_student(prep, student, loss, calibration_examples=10**6)
    assert scored == [96, 40, len(prep.encoded["train"].labels)]
    labels = prep.encoded["train"].labels
    picked = np.concatenate([b["labels"].numpy() for b in prep.build_context(40).calibration])
    assert sorted(set(picked.tolist())) == sorted(set(labels.tolist()))  # stratified: every class is scored
    # plans and the augmenter read token statistics only; counted once, shared by every size
    assert prep.token_context().calibration is None
    assert prep.build_context(40).token_counts is prep.token_context().token_counts is prep.build_context().token_counts


def test_prune_stages_cut_gradually_and_a_rebuild_repeats_the_stages(tiny_run):
    """distill.prune_stages 2 with prune_after 0.5 on 8 steps: FFN cut after steps 2 and 4, each
    time scored on the student's own weights; the record marks the stages, and distilling from it
    (as export does) repeats them and gives the same student."""
    from autodistill.config import load_config
    from autodistill.specs import LossSpec, StudentSpec, TrainSpec
    from autodistill.tasks.sequence_classification.distill import distill_student, prune_points
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, _ = tiny_run
    form = "student.transforms=[{name: depth, layers: 2, choice: uniform}, {name: ffn, ratio: 0.25}]"
    args = [form, "distill.max_steps=8", "distill.prune_after=0.5", "distill.eval_every=2", "distill.prune_stages=2"]
    prep = prepare(load_config(path, args), progress=False)
    student, loss = StudentSpec.from_config(prep.cfg.student), LossSpec.from_config(prep.cfg.distill.loss)
    seen: list[int] = []
    run = distill_student(prep, student, loss, evaluate=lambda step, q: seen.append(step))
    assert run.warmup_steps == 2 and run.train.steps == 8 and seen == [6, 8]
    assert [h["step"] for h in run.train.history] == list(range(1, 9))
    records = run.build.resolved["transforms"]
    assert [(r["name"], r.get("stage")) for r in records] == [("depth", None), ("ffn", 1), ("ffn", 2)]
    teacher_ffn = prep.teacher_model().config.intermediate_size
    widths = [len(r["resolved"]["keep"][0]) for r in records[1:]]
    assert widths == [teacher_ffn // 2, teacher_ffn // 4]  # sqrt(0.25) of the width, then the rest of the cut
    again = distill_student(prep, None, loss, built=run.build)
    assert again.build.resolved == run.build.resolved and again.validation == run.validation
    one_shot = prepare(load_config(path, args[:-1]), progress=False)
    plain = distill_student(one_shot, student, loss)
    assert [r.get("stage") for r in plain.build.resolved["transforms"]] == [None, None]
    staged = distill_student(prep, None, loss, built=plain.build)  # a one-shot record, staged by the config
    assert staged.build.resolved == run.build.resolved
    # a staged record needs a step per stage: too short a run is refused, naming the keys
    from autodistill.errors import ConfigError

    with pytest.raises(ConfigError, match=r"2 stages \(distill.prune_stages\), but 2 training steps are too few"):
        distill_student(prep, None, loss, TrainSpec(steps=2, prune_after=0.5, prune_stages=2), built=run.build)
    assert prune_points(TrainSpec(steps=530, prune_after=0.5), 2) == [132, 265]
    assert prune_points(TrainSpec(steps=3, prune_after=0.9), 2) == [1, 2]


def test_weight_average_with_a_warm_up_averages_each_stage(tiny_run):
    """distill.ema with prune_after: the warm-up's average is what gets pruned, the pruned student
    averages its own steps, and the run is deterministic (export's --no-retrain relies on it)."""
    from autodistill.config import load_config
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import prepare, train_spec

    path, _ = tiny_run
    form = "student.transforms=[{name: depth, layers: 2, choice: uniform}, {name: ffn, ratio: 0.5}]"
    args = [form, "distill.max_steps=8", "distill.prune_after=0.5", "distill.eval_every=2"]
    runs = {}
    for ema in (0.0, 0.9):
        prep = prepare(load_config(path, [*args, f"distill.ema={ema}"]), progress=False)
        assert train_spec(prep.cfg, 10).ema == ema
        student, loss = StudentSpec.from_config(prep.cfg.student), LossSpec.from_config(prep.cfg.distill.loss)
        runs[ema] = distill_student(prep, student, loss)
    averaged, plain = runs[0.9], runs[0.0]
    assert averaged.warmup_steps == 4 and averaged.train.steps == 8
    # the same optimisation up to the cut; after it the pruned weights differ (cut from the average)
    assert [h["loss"] for h in averaged.train.history[:4]] == [h["loss"] for h in plain.train.history[:4]]
    assert averaged.train.history[-1]["loss"] != plain.train.history[-1]["loss"]
    again = distill_student(prep, student, loss)
    assert again.validation == averaged.validation and again.build.resolved == averaged.build.resolved


def test_full_runs_score_validation_as_the_student_ships(tiny_run, monkeypatch):
    """A vocabulary-pruned student: full-length runs (checkpoints kept) evaluate validation with its
    own tokenizer's encoding at every checkpoint and at the end; proxies keep the training encoding."""
    import autodistill.tasks.sequence_classification.distill as distill
    from autodistill.config import load_config
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, _ = tiny_run
    form = "student.transforms=[{name: vocab, min_count: 2}, {name: depth, layers: 2, choice: uniform}]"
    prep = prepare(load_config(path, [form, "distill.max_steps=6", "distill.eval_every=2"]), progress=False)
    student, loss = StudentSpec.from_config(prep.cfg.student), LossSpec.from_config(prep.cfg.distill.loss)
    calls, real = [], distill.shipped_split
    monkeypatch.setattr(distill, "shipped_split", lambda p, b, split: calls.append(split) or real(p, b, split))
    seen = []
    full = distill.distill_student(prep, student, loss, evaluate=lambda step, q: seen.append(q))
    assert calls == ["validation"] and len(seen) == 3  # encoded once, used at steps 2, 4, 6
    shipped = distill.student_quality(prep, full.build.model, "validation", None, real(prep, full.build, "validation"))
    assert full.validation == shipped and max(seen) == shipped["quality"]  # the kept checkpoint, as shipped
    calls.clear()
    proxy = distill.distill_student(prep, student, loss, keep_best=False)
    trained = distill.student_quality(prep, proxy.build.model, "validation", proxy.token_id_map)
    assert calls == [] and proxy.validation == trained


def test_distill_times_student_and_teacher_in_the_budgets_runtime(tiny_run, capsys):
    path, tmp = tiny_run
    assert main(["distill", str(path), "--quiet", "--set", "budget.runtime=onnx-int8"]) == 0
    assert "onnx-int8 ms b1" in capsys.readouterr().out
    result = json.loads((tmp / "out" / "result.json").read_text())
    for who in ("student", "teacher"):
        rt = result[who]["runtime_latency"]
        assert rt["runtime"] == "onnx-int8" and rt["latency_ms_b1"] > 0
        # energy per 1,000 predictions of both, and the training's joules (evaluate.energy)
        assert result[who]["energy"]["joules_per_1000"] > 0
        assert result[who]["energy"]["method"] in ("measured", "estimated")
    assert result["train"]["energy"]["joules"] > 0


def test_a_teacher_the_user_brings_is_measured_before_any_student(tmp_path, capsys):
    """A folder that is a classifier already is used as it is, and `teacher` prints its validation
    and test quality first (an untrained head: whatever it scores, it is reported, not assumed)."""
    from helpers import tiny_classifier_dir

    folder = tiny_classifier_dir(tmp_path / "clf")
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(200))
    cfg = {"output_dir": str(tmp_path / "out"), "teacher": {"model": str(folder)}, "data": {"source": str(data)}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["teacher", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(a classifier already; used as it is)" in out and "fine-tuned" not in out
    val = re.search(r"validation accuracy (0\.\d{4}|1\.0000) \(accuracy", out)
    test = re.search(r"test accuracy (0\.\d{4}|1\.0000) \(accuracy", out)
    assert val and test, out
    from autodistill.api import teacher as run_teacher

    info = run_teacher(str(path), progress=False)
    assert info["training"] is None and f"{info['test']['accuracy']:.4f}" == test.group(1)


def test_a_small_training_split_gets_teacher_labelled_copies_by_default(tiny_run, monkeypatch):
    """distill.augment.ratio null: the tiny run's 480 training rows are under small_train, so the
    full run adds one copy per example and says why; with small_train under them it adds none."""
    from autodistill.api import distill

    path, _ = tiny_run
    calls = count_copies(monkeypatch)
    on = distill(str(path), ["distill.max_steps=4", "tracking.enabled=false"], progress=False)
    assert calls == [16] * 4
    aug = on["train"]["augment"]
    assert aug["ratio"] == 1 and "under small_train (5,000)" in aug["why"]
    calls.clear()
    off = distill(str(path), ["distill.max_steps=4", "distill.augment.small_train=100"], progress=False)
    assert calls == [] and off["train"]["augment"] is None


def test_self_distillation_born_again_and_progressive_weighting_distill(tiny_run):
    """The three strategies on the tiny task: ``self_kl`` beside the teacher's ``kl`` (also across a
    ``prune_after`` cut), a born-again student of the teacher's shape, and ``progressive`` weights."""
    from autodistill.config import load_config
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, _ = tiny_run
    terms = "distill.loss.terms=[{name: kl}, {name: self_kl, weight: 0.5, start: 0.25}]"
    pruned = "student.transforms=[{name: depth, layers: 2, choice: uniform}, {name: ffn, ratio: 0.5}]"
    cfg = load_config(path, [terms, pruned, "distill.max_steps=8", "distill.prune_after=0.5", "distill.eval_every=2"])
    prep = prepare(cfg, progress=False)
    run = distill_student(prep, StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss))
    assert run.train.steps == 8 and run.warmup_steps == 4
    logged = [h["self_kl"] for h in run.train.history]
    assert logged[0] == 0.0 and all(v >= 0 for v in logged) and max(logged) > 0

    born = load_config(path, ["student.transforms=[{name: born_again}]", "distill.max_steps=4"])
    again = distill_student(prep, StudentSpec.from_config(born.student), LossSpec.from_config(born.distill.loss))
    assert again.build.shape.num_layers == prep.teacher_model().config.num_hidden_layers
    assert [t["name"] for t in again.build.resolved["transforms"]] == ["born_again"]

    weighting = "distill.loss.weighting={name: progressive, scope: all, log_every: 1}"
    layered = "distill.loss.terms=[{name: kl}, {name: hidden_mse}]"
    prog = load_config(path, [layered, weighting, "distill.max_steps=6"])
    done = distill_student(prep, StudentSpec.from_config(prog.student), LossSpec.from_config(prog.distill.loss))
    first, last = done.train.weights[0], done.train.weights[-1]
    layers = sorted(u for u in first if u.startswith("hidden_mse/"))
    assert done.train.steps == 6 and len(layers) == 2 and "kl" in first
    assert first[layers[0]] > first["kl"] and last["kl"] > last[layers[0]]


def test_qat_trains_the_last_half_fake_quantised_and_saves_a_plain_student(tiny_run, capsys):
    """distill.qat: the record and the summary say from which step the student trained on the int8
    grids (counted over the whole run when distill.prune_after trained it before its FFN cut); the
    saved student is a plain transformers model (the same keys as a fresh one of its config)."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path, tmp = tiny_run
    form = "student.transforms=[{name: depth, layers: 2, choice: uniform}, {name: ffn, ratio: 0.5}]"
    sets = [form, "distill.qat=0.5", "distill.prune_after=0.25", "distill.max_steps=8", "distill.eval_every=4"]
    assert main(["distill", str(path), "--quiet", *[a for s in sets for a in ("--set", s)]]) == 0
    assert "fake-quantised to the int8 grids from step 5 on (distill.qat)" in capsys.readouterr().out
    result = json.loads((tmp / "out" / "result.json").read_text())
    assert result["train"]["qat_from_step"] == 5 and result["config"]["distill"]["qat"] == 0.5
    assert result["train"]["warmup_steps"] == 2 and result["train"]["steps"] == 8
    assert [step for step, _ in result["train"]["evals"]] == [4, 8] and result["train"]["best_step"] == 8
    folder = result["student"]["path"]
    with safe_open(f"{folder}/model.safetensors", "pt") as f:
        saved = set(f.keys())
    fresh = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(folder))
    assert saved == set(fresh.state_dict()) - {"bert.embeddings.position_ids"}
    assert not any("parametrizations" in k for k in saved)
    student = AutoModelForSequenceClassification.from_pretrained(folder)
    assert type(student) is type(fresh) and not any("forward" in m.__dict__ for m in student.modules())
