from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import sentiment_split, tiny_tokenizer

from autodistill.config.run import AugmentConfig
from autodistill.config.schema import Invalid
from autodistill.data import collate, encode, token_counts
from autodistill.data.augment import AUTO_RATIO, IGNORE, Augmenter, effective, nearest_tokens, stack


@pytest.fixture
def setup(tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    split = sentiment_split(64)
    enc = encode(split, tok, 32)
    counts = token_counts(enc, len(tok))
    specials = tuple(sorted(set(tok.all_special_ids)))

    def make(**opts):
        options = AugmentConfig(**{"ratio": 1.0, **opts})
        return Augmenter(options, counts, specials, tok.mask_token_id, tok.pad_token_id, seed=5)

    return tok, enc, make, collate(enc, np.arange(16), tok.pad_token_id)


def test_copies_keep_width_and_specials_and_carry_no_label(setup):
    tok, _, make, batch = setup
    out = make(ratio=1.0)(batch, step=1)
    assert out["input_ids"].shape == batch["input_ids"].shape
    assert set(out) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert (out["labels"] == IGNORE).all()
    for ids, mask in zip(out["input_ids"], out["attention_mask"]):
        n = int(mask.sum())
        assert ids[0] == tok.cls_token_id and ids[n - 1] == tok.sep_token_id
        assert (ids[n:] == tok.pad_token_id).all() and mask[:n].all()


def test_seeded_by_step(setup):
    _, _, make, batch = setup
    aug = make(ratio=1.0)
    assert torch.equal(aug(batch, 3)["input_ids"], make(ratio=1.0)(batch, 3)["input_ids"])
    assert not torch.equal(aug(batch, 3)["input_ids"], aug(batch, 4)["input_ids"])


def test_mask_and_replace_touch_only_content_and_draw_seen_tokens(setup):
    tok, enc, make, batch = setup
    out = make(ratio=1.0, splice_prob=0.0, mask_prob=1.0, replace_prob=0.0)(batch, 1)
    content = (out["attention_mask"] == 1) & ~torch.isin(out["input_ids"], torch.tensor(tok.all_special_ids))
    n = out["attention_mask"].sum(1)
    assert (n >= 3).all()  # every example has content
    masked = out["input_ids"][out["attention_mask"] == 1]
    assert set(masked.tolist()) == {tok.cls_token_id, tok.sep_token_id, tok.mask_token_id}
    assert not content.any()  # all content became [MASK], a special token
    out = make(ratio=1.0, splice_prob=0.0, mask_prob=0.0, replace_prob=1.0)(batch, 1)
    seen = set(np.concatenate(enc.input_ids).tolist()) - set(tok.all_special_ids)
    ids = out["input_ids"][out["attention_mask"] == 1].tolist()
    assert {i for i in ids if i not in tok.all_special_ids} <= seen


def test_ratio_sets_the_number_of_copies_and_splice_mixes_examples(setup):
    tok, _, make, batch = setup
    assert len(make(ratio=0.5)(batch, 1)["labels"]) == 8
    assert len(make(ratio=2.0)(batch, 1)["labels"]) == 32
    out = make(ratio=2.0, splice_prob=1.0, mask_prob=0.0, replace_prob=0.0)(batch, 2)
    rows = {tuple(r[m == 1].tolist()) for r, m in zip(batch["input_ids"], batch["attention_mask"])}
    new = [tuple(r[m == 1].tolist()) for r, m in zip(out["input_ids"], out["attention_mask"])]
    assert sum(r not in rows for r in new) > len(new) // 2  # most copies are new texts


def test_stack_puts_copies_below(setup):
    _, _, make, batch = setup
    extra = make(ratio=0.5)(batch, 1)
    both = stack(batch, extra)
    assert both["input_ids"].shape == (24, batch["input_ids"].shape[1]) and "index" not in both
    assert torch.equal(both["labels"][:16], batch["labels"]) and (both["labels"][16:] == IGNORE).all()


@pytest.mark.parametrize(
    "opts, key",
    [
        ({"ratio": 5}, "ratio"),
        ({"small_train": -1}, "small_train"),
        ({"mask_prob": 1.5}, "mask_prob"),
        ({"mask_prob": 0.6, "replace_prob": 0.6}, "replace_prob"),
        ({"mask_prob": 0.4, "replace_prob": 0.4, "neighbour_prob": 0.4}, "neighbour_prob"),
        ({"neighbour_prob": -0.1}, "neighbour_prob"),
        ({"neighbours": 0}, "neighbours"),
    ],
)
def test_bad_options_name_the_key(opts, key):
    with pytest.raises(Invalid) as err:
        AugmentConfig(**opts)
    assert err.value.key == key


def test_neighbour_replacement_without_embeddings_is_refused(setup):
    tok, enc, _, _ = setup
    opts = AugmentConfig(ratio=1.0, neighbour_prob=0.5)
    with pytest.raises(ValueError, match="embeddings"):
        Augmenter(opts, token_counts(enc, len(tok)), tuple(tok.all_special_ids), tok.mask_token_id, tok.pad_token_id, 5)


def test_pool_copies_start_from_unlabeled_texts_cut_to_the_batch_width(setup, tmp_path):
    tok, enc, _, batch = setup
    counts = token_counts(enc, len(tok))
    specials = tuple(sorted(set(tok.all_special_ids)))
    width = batch["input_ids"].shape[1]
    short = np.asarray(tok("a b")["input_ids"])
    long = np.asarray(tok(" ".join(["good"] * (width + 10)))["input_ids"])
    opts = AugmentConfig(ratio=1.0, unlabeled_share=1.0, splice_prob=0.0, mask_prob=0.0, replace_prob=0.0)
    aug = Augmenter(opts, counts, specials, tok.mask_token_id, tok.pad_token_id, 5, pool=[short, long])
    out = aug(batch, 1)
    rows = [r[m == 1].tolist() for r, m in zip(out["input_ids"], out["attention_mask"])]
    assert (out["labels"] == IGNORE).all() and (out["token_type_ids"] == 0).all()
    assert {tuple(r) for r in rows} <= {tuple(short.tolist()), tuple(long[: width - 1].tolist()) + (tok.sep_token_id,)}
    assert any(len(r) == width and r[-1] == tok.sep_token_id for r in rows)  # the long text, cut, [SEP] kept
    assert any(r == short.tolist() for r in rows)
    none = AugmentConfig(ratio=1.0, unlabeled_share=0.0, splice_prob=0.0, mask_prob=0.0, replace_prob=0.0)
    out = Augmenter(none, counts, specials, tok.mask_token_id, tok.pad_token_id, 5, pool=[short, long])(batch, 1)
    batch_rows = {tuple(r[m == 1].tolist()) for r, m in zip(batch["input_ids"], batch["attention_mask"])}
    assert all(tuple(r[m == 1].tolist()) in batch_rows for r, m in zip(out["input_ids"], out["attention_mask"]))


def test_nearest_tokens_by_cosine_among_allowed_tokens_of_the_same_kind():
    # ids 0-3 words along two directions, 4-5 continuations, 6 not allowed
    emb = torch.tensor(
        [[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.01]], dtype=torch.float32
    )
    tokens = ["a", "b", "c", "d", "##a", "##c", "e"]
    allowed = np.array([True, True, True, True, True, True, False])
    out = nearest_tokens(emb, allowed, tokens, k=1)
    assert out[:, 0].tolist() == [1, 0, 3, 2, 5, 4, -1]  # never itself, nor e, nor a piece of the other kind
    out = nearest_tokens(emb, allowed, tokens, k=2)
    assert out[0].tolist() == [1, 3] and (out[4:] == -1).all()  # two continuations: too few for k=2
    plain = nearest_tokens(emb, allowed, None, k=1)  # no token strings: one kind
    assert plain[0, 0] == 4 and plain[5, 0] == 2


def test_neighbour_replacement_draws_each_token_from_its_own_neighbours(setup):
    tok, enc, _, batch = setup
    counts = token_counts(enc, len(tok))
    specials = tuple(sorted(set(tok.all_special_ids)))
    emb = torch.randn(len(tok), 8, generator=torch.Generator().manual_seed(0))
    tokens = tok.convert_ids_to_tokens(list(range(len(tok))))
    opts = AugmentConfig(ratio=1.0, splice_prob=0.0, mask_prob=0.0, replace_prob=0.0, neighbour_prob=1.0, neighbours=3)
    aug = Augmenter(opts, counts, specials, tok.mask_token_id, tok.pad_token_id, seed=5, embeddings=emb, tokens=tokens)
    allowed = counts > 0
    allowed[list(specials)] = False  # as the augmenter does: specials are never drawn
    table = nearest_tokens(emb, allowed, tokens, 3)
    out = aug(batch, step=1)
    changed = 0
    for row, mask in zip(out["input_ids"], out["attention_mask"]):
        n = int(mask.sum())
        assert row[0] == tok.cls_token_id and row[n - 1] == tok.sep_token_id
        content = row[1 : n - 1]
        assert all(i not in specials and counts[i] > 0 for i in content.tolist())  # tokens training holds
        # each content token is its source's or one of its neighbours, for some batch row of that length
        sources = [r[1 : n - 1] for r, m in zip(batch["input_ids"], batch["attention_mask"]) if int(m.sum()) == n]
        fits = [all(int(o) == int(s) or int(o) in table[int(s)] for o, s in zip(content, src)) for src in sources]
        assert any(fits)
        changed += int(min((content != src).sum() for src in sources))
    assert changed > 0


@pytest.mark.parametrize(
    "ratio, rows, unlabeled, used",
    [
        (None, 4999, False, AUTO_RATIO),  # under the threshold: on
        (None, 5000, False, 0.0),  # at it: off
        (None, 20000, True, AUTO_RATIO),  # a transfer set turns copies on at any size
        (0.0, 100, False, 0.0),  # a ratio the config sets is kept, either way
        (2.0, 50000, False, 2.0),
    ],
)
def test_the_automatic_ratio_switches_at_the_small_train_threshold(ratio, rows, unlabeled, used):
    options, why = effective(AugmentConfig(ratio=ratio, small_train=5000), rows, unlabeled)
    assert options.ratio == used and why
    assert (f"{rows:,} training rows" in why) == (ratio is None and not unlabeled)


def test_an_undecided_ratio_is_refused_by_the_augmenter(setup):
    tok, enc, make, batch = setup
    with pytest.raises(ValueError, match="effective"):
        make(ratio=None)
