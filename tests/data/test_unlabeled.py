from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_helpers import cfg_for

from autodistill.config import load_config
from autodistill.data import TaskData, TextSplit
from autodistill.data.builtin import read_builtin
from autodistill.data.unlabeled import load_unlabeled
from autodistill.errors import ConfigError, DataError


def _task(pairs: bool = False) -> TaskData:
    def split(texts):
        return TextSplit(texts, texts if pairs else None, np.zeros(len(texts), dtype=np.int64))

    return TaskData(
        split(("A fine film.", "dull")),
        split(("Held out  text",)),
        split(("the TEST line",)),
        ("neg", "pos"),
        "fp",
        "x",
    )


def test_reads_txt_csv_and_builtin_sources_and_drops_split_texts_and_repeats(tmp_path):
    txt = tmp_path / "more.txt"
    txt.write_text("a new line\n\nheld out text\nA new   line\nthe test line\nanother one\n", encoding="utf-8")
    csv = tmp_path / "more.csv"
    pd.DataFrame({"body": ["from csv", "a fine film."], "x": [1, 2]}).to_csv(csv, index=False)
    cfg = cfg_for("unused.csv", text_column="body", unlabeled=[str(txt), str(csv), "builtin:amazon_reviews"])
    found = load_unlabeled(cfg, _task())
    assert found.texts[:3] == ("a new line", "another one", "from csv")
    assert found.overlap == 3  # held out, test and train texts, compared case- and space-insensitively
    amazon = len(read_builtin("builtin:amazon_reviews"))
    assert found.read == 6 + 2 + amazon  # every line, blank ones included
    assert 3000 < len(found.texts) - 3 <= amazon  # the built-in Amazon snippets (repeats kept once)


@pytest.mark.parametrize(
    "source, needle",
    [
        ("missing.txt", "'data.unlabeled' parameter names '.*missing.txt', which is not a file"),
        ("builtin:nope", "'data.unlabeled'"),
    ],
)
def test_unknown_sources_name_the_key(tmp_path, source, needle):
    with pytest.raises(DataError, match=needle):
        load_unlabeled(cfg_for("x.csv", unlabeled=[str(tmp_path / source) if "." in source else source]), _task())


def test_a_file_without_the_text_column_pair_tasks_and_empty_sources_are_refused(tmp_path):
    csv = tmp_path / "u.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"no column 'text' \(data.text_column\).*'body'"):
        load_unlabeled(cfg_for("x.csv", unlabeled=[str(csv)]), _task())
    with pytest.raises(DataError, match="pair"):
        load_unlabeled(cfg_for("x.csv", text_pair_column="b", unlabeled=[str(csv)]), _task(pairs=True))
    txt = tmp_path / "u.txt"
    txt.write_text("dull\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="hold no text"):
        load_unlabeled(cfg_for("x.csv", unlabeled=[str(txt)]), _task())


def test_config_refuses_unlabeled_texts_no_step_would_see(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {unlabeled: [builtin:tweets]}\n")
    with pytest.raises(ConfigError, match="'data.unlabeled'.*distill.augment.ratio"):
        load_config(path, ["distill.augment.ratio=0"])
    with pytest.raises(ConfigError, match="'data.unlabeled'.*unlabeled_share"):
        load_config(path, ["distill.augment.unlabeled_share=0"])
    assert load_config(path).data.unlabeled == ["builtin:tweets"]  # the automatic ratio turns copies on
    assert load_config(path, ["distill.augment.ratio=1"]).data.unlabeled == ["builtin:tweets"]
    with pytest.raises(ConfigError, match=r"'data.unlabeled\[0\]'"):
        load_config(path, ["distill.augment.ratio=1", "data.unlabeled=['']"])
