from __future__ import annotations

import shutil

import pytest
from helpers import tiny_backbone_dir, tiny_classifier_dir

from autodistill.config.run import TeacherConfig
from autodistill.errors import TeacherError
from autodistill.teacher.load import is_classifier, label_order, load_classifier, load_config, resolve_source


def test_local_folder_and_classifier_detection(tmp_path):
    clf = tiny_classifier_dir(tmp_path / "clf")
    bb = tiny_backbone_dir(tmp_path / "bb")
    cfg = TeacherConfig(model=str(clf))
    assert resolve_source(cfg) == clf
    assert is_classifier(load_config(clf, cfg))
    assert not is_classifier(load_config(bb, TeacherConfig(model=str(bb))))
    model = load_classifier(clf, cfg)
    assert model.config.num_labels == 2


def test_hub_id_resolves_offline_from_a_hub_laid_out_cache(tmp_path, monkeypatch):
    src = tiny_classifier_dir(tmp_path / "src")
    cache = tmp_path / "hub"
    repo = cache / "models--tiny-org--tiny-sentiment"
    sha = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / sha
    shutil.copytree(src, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    path = resolve_source(TeacherConfig(model="tiny-org/tiny-sentiment"))
    assert path.resolve() == snap.resolve()
    assert load_classifier(path, TeacherConfig(model="tiny-org/tiny-sentiment")).config.num_labels == 2


def test_unknown_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(TeacherError, match="'teacher.model' 'nobody/nothing'"):
        resolve_source(TeacherConfig(model="nobody/nothing"))


def test_missing_folder_and_unknown_builtin(tmp_path):
    with pytest.raises(TeacherError, match="does not exist"):
        resolve_source(TeacherConfig(model=str(tmp_path / "missing") + "/x"))
    with pytest.raises(TeacherError, match="Valid builtins: builtin:minilm"):
        resolve_source(TeacherConfig(model="builtin:nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TeacherError, match="no config.json"):
        resolve_source(TeacherConfig(model=str(tmp_path / "empty")))


def test_pickled_weights_refused_by_default(tmp_path):
    import torch
    from transformers import BertForSequenceClassification

    folder = tiny_classifier_dir(tmp_path / "clf")
    model = BertForSequenceClassification.from_pretrained(folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(TeacherError, match="no .safetensors weights"):
        load_classifier(folder, TeacherConfig(model=str(folder)))


def test_label_order_by_name_and_missing_label(tmp_path):
    folder = tiny_classifier_dir(tmp_path / "clf", labels=("positive", "negative"))
    config = load_config(folder, TeacherConfig(model=str(folder)))
    assert label_order(config, ("negative", "positive")) == [1, 0]
    with pytest.raises(TeacherError, match="label 'neutral', for which the teacher has no output"):
        label_order(config, ("negative", "neutral", "positive"))


def test_label_count_beyond_unnamed_outputs(tmp_path):
    from transformers import BertConfig

    cfg = BertConfig(num_labels=2)
    assert label_order(cfg, ("a", "b")) == [0, 1]
    with pytest.raises(TeacherError, match="label 'c' has no teacher output"):
        label_order(cfg, ("a", "b", "c"))
