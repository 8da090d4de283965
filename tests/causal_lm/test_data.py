"""Causal-LM data: packing, pair masking, chat templates, splitting by document, errors, sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

from autodistill.config.run import DataConfig
from autodistill.data.load import load_task_data
from autodistill.errors import ConfigError, DataError
from autodistill.tasks.causal_lm.data import check_block_size, check_tokenizer, load_lm_data

PAD, EOS, UNK, BOS = 0, 1, 2, 3
WORDS = "a b c d e f g h i j <user> <assistant>".split()
A, B, C, D, E, F, G, H, I, J, USER, ASSISTANT = range(4, 4 + len(WORDS))
X = -100  # no loss

CHAT = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} <eos> {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)


def make_tokenizer(words=WORDS, bos=False, eos="<eos>", pad="<pad>", chat_template=None):
    """A word-level fast tokenizer: ids 0-3 special, then ``words`` in order; whitespace splits."""
    vocab = {"<pad>": PAD, "<eos>": EOS, "<unk>": UNK, "<bos>": BOS}
    vocab.update({w: i for i, w in enumerate(words, start=len(vocab))})
    model = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = WhitespaceSplit()
    if bos:
        model.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=model, eos_token=eos, pad_token=pad, unk_token="<unk>", bos_token="<bos>"
    )
    if chat_template:
        tok.chat_template = chat_template
    return tok


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def split_folder(tmp_path, train, validation, test, key="text"):
    """A folder of train/validation/test JSONL files; plain strings become ``{key: s}`` rows."""
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        write_jsonl(tmp_path / f"{name}.jsonl", [r if isinstance(r, dict) else {key: r} for r in rows])
    return str(tmp_path)


def documents_of(split):
    """The documents of a packed split, read back: the non-pad stream cut at each EOS."""
    stream = split.input_ids[split.attention_mask == 1].tolist()
    docs, cur = [], []
    for t in stream:
        if t == EOS:
            docs.append(tuple(cur))
            cur = []
        else:
            cur.append(t)
    return docs


def test_packing_marks_document_ends_and_pads_the_last_block(tmp_path):
    src = split_folder(tmp_path, ["a"], ["a b c d e", "f g", "h i j a b c d"], ["a"])
    data = load_lm_data(DataConfig(source=src, max_length=8), make_tokenizer())
    val = data.splits["validation"]
    np.testing.assert_array_equal(
        val.input_ids,
        [[A, B, C, D, E, EOS, F, G], [EOS, H, I, J, A, B, C, D], [EOS, PAD, PAD, PAD, PAD, PAD, PAD, PAD]],
    )
    np.testing.assert_array_equal(
        val.labels, [[A, B, C, D, E, EOS, F, G], [EOS, H, I, J, A, B, C, D], [EOS, X, X, X, X, X, X, X]]
    )
    np.testing.assert_array_equal(val.attention_mask, [[1] * 8, [1] * 8, [1] + [0] * 7])
    assert val.input_ids.dtype == np.int32 and val.labels.dtype == np.int32 and val.attention_mask.dtype == np.int8
    assert (len(val), val.documents, val.loss_tokens) == (3, 3, 14)  # the last block's EOS is never predicted
    assert data.kind == "text" and data.block_size == 8 and data.source == src
    assert data.token_report() == {
        "train": {"documents": 1, "blocks": 1, "tokens": 2, "loss_tokens": 1},
        "validation": {"documents": 3, "blocks": 3, "tokens": 17, "loss_tokens": 14},
        "test": {"documents": 1, "blocks": 1, "tokens": 2, "loss_tokens": 1},
    }


def test_a_tokenizer_that_adds_bos_gets_it_before_each_document_without_loss(tmp_path):
    src = split_folder(tmp_path, ["a"], ["a b", "c"], ["a"])
    val = load_lm_data(DataConfig(source=src, max_length=8), make_tokenizer(bos=True)).splits["validation"]
    np.testing.assert_array_equal(val.input_ids, [[BOS, A, B, EOS, BOS, C, EOS, PAD]])
    np.testing.assert_array_equal(val.labels, [[X, A, B, EOS, X, C, EOS, X]])
    np.testing.assert_array_equal(val.attention_mask, [[1, 1, 1, 1, 1, 1, 1, 0]])


def test_pad_falls_back_to_eos_and_padding_is_told_by_the_mask_only(tmp_path):
    tok = make_tokenizer(pad=None)
    assert check_tokenizer(tok, "teacher.model") == EOS
    src = split_folder(tmp_path, ["a"], ["a b"], ["a"])
    val = load_lm_data(DataConfig(source=src, max_length=8), tok).splits["validation"]
    np.testing.assert_array_equal(val.input_ids, [[A, B, EOS, EOS, EOS, EOS, EOS, EOS]])
    np.testing.assert_array_equal(val.labels, [[A, B, EOS, X, X, X, X, X]])
    np.testing.assert_array_equal(val.attention_mask, [[1, 1, 1, 0, 0, 0, 0, 0]])


def many_documents(n):
    """``n`` distinct documents over a vocabulary of 2n words: w{i} w{n+i} [w{i}...]."""
    words = [f"w{i}" for i in range(2 * n)]
    docs = [" ".join([f"w{i}", f"w{n + i}"] + [f"w{i}"] * (i % 4)) for i in range(n)]
    return words, docs


def test_documents_never_cross_splits_and_the_split_is_seeded(tmp_path):
    words, docs = many_documents(50)
    src = write_jsonl(tmp_path / "d.jsonl", [{"text": d} for d in docs])
    tok = make_tokenizer(words)
    encoded = {tuple(tok(d, add_special_tokens=False)["input_ids"]) for d in docs}
    cfg = DataConfig(source=str(src), max_length=8, split_seed=3)
    data = load_lm_data(cfg, tok)
    parts = {role: documents_of(s) for role, s in data.splits.items()}
    assert {role: len(p) for role, p in parts.items()} == {"train": 40, "validation": 5, "test": 5}
    sets = {role: set(p) for role, p in parts.items()}
    assert sets["train"] | sets["validation"] | sets["test"] == encoded
    assert not (sets["train"] & sets["validation"] or sets["train"] & sets["test"] or sets["validation"] & sets["test"])
    assert {role: s.documents for role, s in data.splits.items()} == {"train": 40, "validation": 5, "test": 5}
    again = load_lm_data(cfg, tok)
    assert again.fingerprint == data.fingerprint
    other = load_lm_data(DataConfig(source=str(src), max_length=8, split_seed=4), tok)
    assert set(documents_of(other.splits["test"])) != sets["test"]
    assert other.fingerprint != data.fingerprint
    assert load_lm_data(DataConfig(source=str(src), max_length=16, split_seed=3), tok).fingerprint != data.fingerprint


def test_max_train_examples_keeps_the_first_blocks_of_shuffled_documents(tmp_path):
    words, docs = many_documents(50)
    src = write_jsonl(tmp_path / "d.jsonl", [{"text": d} for d in docs])
    tok = make_tokenizer(words)
    full = load_lm_data(DataConfig(source=str(src), max_length=8), tok).splits["train"]
    capped = load_lm_data(DataConfig(source=str(src), max_length=8, max_train_examples=3), tok).splits["train"]
    assert len(capped) == 3 and len(full) > 3
    np.testing.assert_array_equal(capped.input_ids, full.input_ids[:3])
    # the documents that start in those 3 * 8 tokens, the last one cut at the block's end
    lengths = np.array([len(d) + 1 for d in documents_of(full)])
    starts = np.cumsum(lengths) - lengths
    assert capped.documents == int((starts < 24).sum()) < full.documents
    firsts = [d[0] for d in documents_of(full)]  # document i starts with word w{i}: source order would be sorted
    assert firsts != sorted(firsts)


def test_pairs_mask_exactly_the_prompt_and_cut_long_pairs(tmp_path):
    rows = [{"q": "a b", "r": "c d"}, {"q": "a b c d e f", "r": "g h i"}]
    src = split_folder(tmp_path, [{"q": "a", "r": "b"}], rows, [{"q": "a", "r": "b"}])
    cfg = DataConfig(source=src, text_column="q", response_column="r", max_length=8)
    with pytest.warns(UserWarning, match=r"data.max_length \(8 tokens\).*1 of 2 in validation") as caught:
        data = load_lm_data(cfg, make_tokenizer())
    assert len(caught) == 1
    val = data.splits["validation"]
    np.testing.assert_array_equal(val.input_ids, [[A, B, C, D, EOS, PAD, PAD, PAD], [A, B, C, D, E, F, G, H]])
    np.testing.assert_array_equal(val.labels, [[X, X, C, D, EOS, X, X, X], [X, X, X, X, X, X, G, H]])
    np.testing.assert_array_equal(val.attention_mask, [[1, 1, 1, 1, 1, 0, 0, 0], [1] * 8])
    assert (data.kind, val.documents, val.truncated, val.loss_tokens) == ("pairs", 2, 1, 5)
    assert data.token_report()["validation"] == {"documents": 2, "blocks": 2, "tokens": 13, "loss_tokens": 5}


def test_pairs_are_split_by_pair_and_capped_by_rows(tmp_path):
    words, docs = many_documents(30)
    src = write_jsonl(tmp_path / "p.jsonl", [{"text": d, "response": d.split()[1]} for d in docs])
    cfg = DataConfig(source=str(src), response_column="response", max_length=8, max_train_examples=5)
    data = load_lm_data(cfg, make_tokenizer(words))
    assert {r: (len(s), s.documents) for r, s in data.splits.items()} == {
        "train": (5, 5),
        "validation": (3, 3),
        "test": (3, 3),
    }
    firsts = {role: set(s.input_ids[:, 0].tolist()) for role, s in data.splits.items()}
    assert not (firsts["train"] & firsts["validation"] or firsts["validation"] & firsts["test"])


def test_chat_template_loss_starts_after_the_generation_prompt(tmp_path):
    src = split_folder(tmp_path, [{"text": "a", "r": "b"}], [{"text": "a b", "r": "c"}], [{"text": "a", "r": "b"}])
    cfg = DataConfig(source=src, response_column="r", chat_template=True, max_length=8)
    val = load_lm_data(cfg, make_tokenizer(chat_template=CHAT)).splits["validation"]
    # "<user> a b <eos> <assistant> c <eos> ": the template's own EOS ends the reply, none is added
    np.testing.assert_array_equal(val.input_ids, [[USER, A, B, EOS, ASSISTANT, C, EOS, PAD]])
    np.testing.assert_array_equal(val.labels, [[X, X, X, X, X, C, EOS, X]])
    np.testing.assert_array_equal(val.attention_mask, [[1, 1, 1, 1, 1, 1, 1, 0]])


def test_chat_template_whose_prompt_tokens_are_no_prefix_uses_the_shared_text(tmp_path):
    # the generation prompt "<assistant>" and the reply's "<assistant>c" tokenize differently
    template = (
        "{% for m in messages %}{% if m['role'] == 'user' %}<user> {{ m['content'] }} "
        "{% else %}<assistant>{{ m['content'] }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    src = split_folder(tmp_path, [{"text": "a", "r": "b"}], [{"text": "a b", "r": "c"}], [{"text": "a", "r": "b"}])
    cfg = DataConfig(source=src, response_column="r", chat_template=True, max_length=8)
    val = load_lm_data(cfg, make_tokenizer(chat_template=template)).splits["validation"]
    # "<user> a b <assistant>c": the merged word is unknown; EOS is added since the template has none
    np.testing.assert_array_equal(val.input_ids, [[USER, A, B, UNK, EOS, PAD, PAD, PAD]])
    np.testing.assert_array_equal(val.labels, [[X, X, X, UNK, EOS, X, X, X]])


def test_tokenizer_without_eos_or_pad_names_the_key():
    with pytest.raises(ConfigError, match="teacher.model.*neither a pad token nor an EOS token"):
        check_tokenizer(make_tokenizer(eos=None, pad=None), "teacher.model")
    with pytest.raises(ConfigError, match="teacher.model.*neither"):
        load_lm_data(DataConfig(source="unused.jsonl"), make_tokenizer(eos=None, pad=None))
    with pytest.raises(ConfigError, match="teacher.model.*no EOS token"):
        load_lm_data(DataConfig(source="unused.jsonl"), make_tokenizer(eos=None))


def test_block_larger_than_the_context_names_data_max_length():
    check_block_size(128, 128)
    check_block_size(128, None)
    msg = r"'data.max_length' parameter must be at most the teacher's context \(64\). Got 128 instead."
    with pytest.raises(ConfigError, match=msg):
        check_block_size(128, 64)
    with pytest.raises(ConfigError, match="data.max_length"):
        load_lm_data(DataConfig(source="unused.jsonl", max_length=128), make_tokenizer(), max_positions=64)


def test_chat_template_needs_a_template_and_pairs(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"text": "a", "r": "b"}] * 10)
    with pytest.raises(ConfigError, match="data.chat_template.*no chat template"):
        load_lm_data(DataConfig(source=str(src), response_column="r", chat_template=True), make_tokenizer())
    with pytest.raises(ConfigError, match="data.chat_template.*data.response_column is not set"):
        load_lm_data(DataConfig(source=str(src), chat_template=True), make_tokenizer(chat_template=CHAT))


def test_missing_columns_name_the_key_and_list_the_columns(tmp_path):
    src = str(write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "reply": "b"}] * 10))
    with pytest.raises(DataError, match=r"'data.text_column'.*'text'.*Columns: 'prompt', 'reply'"):
        load_lm_data(DataConfig(source=src), make_tokenizer())
    with pytest.raises(DataError, match=r"'data.response_column'.*'response'.*Columns: 'prompt', 'reply'"):
        load_lm_data(DataConfig(source=src, text_column="prompt", response_column="response"), make_tokenizer())


def test_an_empty_split_is_refused(tmp_path):
    src = split_folder(tmp_path, ["a b"], ["   "], ["a"])  # the only validation document is blank
    with pytest.raises(DataError, match="validation split of .* is empty"):
        load_lm_data(DataConfig(source=src), make_tokenizer())


def test_txt_file_holds_one_document_per_paragraph(tmp_path):
    paragraphs = [f"a b\nc {w}" for w in "abcdefghij"]  # a line break inside a paragraph stays inside it
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(paragraphs[:5]) + "\n \n\n" + "\n\n".join(paragraphs[5:]) + "\n")
    data = load_lm_data(DataConfig(source=str(path), max_length=8), make_tokenizer())
    docs = [d for s in data.splits.values() for d in documents_of(s)]
    assert sorted(docs) == sorted((A, B, C, vocab_id(w)) for w in "abcdefghij")
    assert [s.documents for s in data.splits.values()] == [8, 1, 1]
    with pytest.raises(DataError, match="plain text.*'data.response_column'"):
        load_lm_data(DataConfig(source=str(path), response_column="r"), make_tokenizer())


def vocab_id(word):
    return 4 + WORDS.index(word)


def test_folder_of_txt_files_holds_one_document_per_file(tmp_path):
    for i, w in enumerate("abcdefghij"):
        (tmp_path / f"{i:02d}.txt").write_text(f"{w} a\n\nb\n")
    data = load_lm_data(DataConfig(source=str(tmp_path), max_length=8), make_tokenizer())
    docs = [d for s in data.splits.values() for d in documents_of(s)]
    assert sorted(docs) == sorted((vocab_id(w), A, B) for w in "abcdefghij")


def test_jsonl_errors_come_from_the_shared_reader(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\nnot json\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_lm_data(DataConfig(source=str(path)), make_tokenizer())


def test_movie_dialog_is_no_classification_set():
    with pytest.raises(DataError, match=r"'data.label_column'.*'label'.*Columns: 'text', 'prompt', 'response'"):
        load_task_data(DataConfig(source="builtin:movie_dialog"))


@pytest.mark.slow  # 2-5 s per load of the 64k exchanges on a shared 2-core machine
def test_builtin_movie_dialog_loads_as_text_and_as_pairs():
    vocab = "i you the to a it's what ? . , don't no".split()
    tok = make_tokenizer(vocab)
    data = load_lm_data(DataConfig(source="builtin:movie_dialog", max_length=64), tok)
    report = data.token_report()
    assert sum(r["documents"] for r in report.values()) == 64_248  # 102 lines with a blank side skipped
    assert 6_000 <= report["test"]["documents"] <= 6_700 and 6_000 <= report["validation"]["documents"] <= 6_700
    assert sum(r["tokens"] for r in report.values()) > 64_248 * 5
    pairs = load_lm_data(
        DataConfig(source="builtin:movie_dialog", text_column="prompt", response_column="response", max_length=64),
        tok,
    )
    assert sum(s.documents for s in pairs.splits.values()) == 64_248
    assert pairs.kind == "pairs" and pairs.splits["train"].input_ids.shape[1] == 64
