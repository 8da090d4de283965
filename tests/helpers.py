"""Tiny in-process models, tokenizers and data shared by tests (no hub, no network)."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import numpy as np

POSITIVE = ["good", "great", "fine", "lovely", "superb", "fun", "warm", "bright"]
NEGATIVE = ["bad", "awful", "dull", "boring", "poor", "sad", "cold", "grim"]
NEUTRAL = ["the", "a", "movie", "film", "plot", "was", "is", "and", "very", "actor", "story", "it"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys(SPECIALS + POSITIVE + NEGATIVE + NEUTRAL + list("abcdefghijklmnopqrstuvwxyz")))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})  # transformers 5: `vocab=`


def tiny_bert_config(num_labels: int = 2, layers: int = 4, vocab_size: int = 64, **extra: Any):
    """The tests' tiny BERT: hidden 32, 4 heads, FFN 64, 64 positions; ``extra`` goes to BertConfig."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
        **extra,
    )


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A learnable toy task: the label is the polarity of the one sentiment word."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        words = rng.sample(NEUTRAL, rng.randint(2, 8)) + [word]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def sentiment_split(n: int, seed: int = 0):
    """``sentiment_rows`` as a TextSplit (label 1 = positive)."""
    import numpy as np

    from autodistill.data.types import TextSplit

    rows = sentiment_rows(n, seed)
    return TextSplit(tuple(r[0] for r in rows), None, np.array([r[1] == "positive" for r in rows], dtype=np.int64))


def tiny_training_set(folder: Path, n: int, layers: int = 2, seed: int = 0):
    """A tiny BERT classifier (seeded) and ``n`` encoded sentiment rows for the training loop:
    ``(model, encoded, pad_id)``."""
    import torch
    from transformers import BertForSequenceClassification

    from autodistill.data import encode

    tok = tiny_tokenizer(folder)
    enc = encode(sentiment_split(n), tok, 32)
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config(vocab_size=len(tok), layers=layers)), enc, tok.pad_token_id


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def tiny_backbone_dir(folder: Path, layers: int = 4) -> Path:
    """A BertModel backbone folder (not a classifier) with its tokenizer, like MiniLM."""
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    tok = tiny_tokenizer(folder)
    model = BertModel(tiny_bert_config(layers=layers, vocab_size=len(tok)))
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def tiny_classifier_dir(folder: Path, labels: tuple[str, ...] = ("negative", "positive"), layers: int = 4) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    tok = tiny_tokenizer(folder)
    cfg = tiny_bert_config(num_labels=len(labels), layers=layers, vocab_size=len(tok))
    cfg.id2label = dict(enumerate(labels))
    cfg.label2id = {n: i for i, n in enumerate(labels)}
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def file_tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) by its sha256, every link by where it points and
    every folder by name, so a before/after comparison shows anything changed, added or removed."""
    import hashlib
    import os

    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link -> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "folder"
    return out


LM_WORDS = "the a cat dog sat ran on under mat log big small red blue and then it was very happy sad".split()


def lm_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` short documents of a toy language (a few sentences of a 22-word vocabulary)."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        sentences = [" ".join(rng.choice(LM_WORDS, size=rng.integers(4, 9))) + "." for _ in range(rng.integers(1, 4))]
        docs.append(" ".join(sentences))
    return docs


def tiny_lm_tokenizer(texts: list[str]):
    """A real fast BPE tokenizer trained in-process on ``texts``, with EOS (= pad) and BOS tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=96, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )


def tiny_lm_dir(folder: Path, texts: list[str], layers: int = 4, seed: int = 0) -> Path:
    """A randomly initialised tiny Llama causal LM and its tokenizer, saved as a model folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_lm_tokenizer(texts)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, texts: list[str]) -> Path:
    import json

    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path
