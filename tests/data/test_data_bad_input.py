"""Bad data files that used to be read silently wrong, or reported unhelpfully: each now fails
with a DataError naming the file and the problem, or warns naming the label and the split."""

from __future__ import annotations

import gzip
import warnings

import pandas as pd
import pytest
from data_helpers import cfg_for, make_frame

from autodistill.data import load_task_data
from autodistill.errors import DataError


def test_csv_with_a_used_column_twice_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    rows = ["text,label,text"] + [f"row {i},{'pos' if i % 2 else 'neg'},other {i}" for i in range(60)]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        load_task_data(cfg_for(path))
    msg = str(err.value)
    assert str(path) in msg and "2 columns named 'text'" in msg and "columns 1, 3" in msg
    assert "data.text_column" in msg


def test_csv_with_an_unused_column_twice_still_loads(tmp_path):
    path = tmp_path / "dup_other.csv"
    rows = ["text,note,label,note"] + [f"row {i},a,{'pos' if i % 2 else 'neg'},b" for i in range(60)]
    path.write_text("\n".join(rows) + "\n")
    data = load_task_data(cfg_for(path))
    assert len(data.train) + len(data.validation) + len(data.test) == 60


def test_huge_header_is_not_echoed_whole(tmp_path):
    path = tmp_path / "huge.csv"
    header = "x" * 5_000_000  # one 5 MB column name (e.g. a file with no line breaks)
    path.write_text(header + "\n" + "a\n" * 10)
    with pytest.raises(DataError) as err:
        load_task_data(cfg_for(path))
    msg = str(err.value)
    assert "'data.text_column' parameter names column 'text'" in msg and "xxx..." in msg
    assert len(msg) < 1000


def test_huge_label_value_is_not_echoed_whole(tmp_path):
    import json

    rows = [{"text": f"t {i}", "label": "pos" if i % 2 else "neg"} for i in range(40)]
    rows[3]["label"] = 1.5  # refused: labels must be strings or integers
    rows[5]["label"] = "y" * 1_000_000
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as err:
        load_task_data(cfg_for(path))
    assert "must hold class labels" in str(err.value) and len(str(err.value)) < 1500


@pytest.mark.parametrize(
    "bad, said",
    [
        ('{"text": broken', "line 3: not valid JSON"),
        ("[1, 2]", "line 3: a JSON array, not an object"),
        ("5", "line 3: a JSON number, not an object"),
        ("null", "line 3: a JSON null, not an object"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_broken_jsonl_line_is_reported_by_line_number(tmp_path, bad, said, gz):
    lines = ['{"text": "a", "label": "pos"}', '{"text": "b", "label": "neg"}', bad, '{"text": "c", "label": "neg"}']
    body = "\n".join(lines) + "\n"
    path = tmp_path / ("data.jsonl.gz" if gz else "data.jsonl")
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(body)
    else:
        path.write_text(body)
    with pytest.raises(DataError) as err:
        load_task_data(cfg_for(path))
    msg = str(err.value)
    assert f"The data file {str(path)!r} {said}" in msg and "position" not in msg


def _split_folder(tmp_path, test_labels):
    folder = tmp_path / "splits"
    folder.mkdir()
    make_frame(80).to_csv(folder / "train.csv", index=False)
    test = pd.DataFrame({"text": [f"test text {i}" for i in range(len(test_labels))], "label": test_labels})
    test.to_csv(folder / "test.csv", index=False)
    return folder


def test_test_label_unseen_in_training_warns_naming_label_and_split(tmp_path):
    folder = _split_folder(tmp_path, ["neg", "pos", "neutral", "neutral"])
    with pytest.warns(UserWarning) as caught:
        data = load_task_data(cfg_for(folder))
    msg = " ".join(str(w.message) for w in caught)
    assert "The test split ('test')" in msg and "'neutral'" in msg and "(2 row(s))" in msg
    assert "training split ('train') never shows" in msg
    assert "neutral" in data.label_names  # kept going: the rows are scored, as errors


def test_labels_all_seen_in_training_do_not_warn(tmp_path):
    folder = _split_folder(tmp_path, ["neg", "pos", "pos"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_task_data(cfg_for(folder))
    assert data.label_names == ("neg", "pos")
