"""How far a vocabulary-pruned student's scores move between its training encoding and its shipped one.

    python benchmarks/encoding_gap.py configs/demo.yaml EXPORTED_FOLDER [EXPORTED_FOLDER ...]

For each exported student with a ``vocab`` transform, on validation and test: accuracy with the
teacher's tokens mapped through the student's token map (dropped pieces become [UNK]: how the
student trains and how validation, checkpoints, the search and ``--candidates`` score it) and with
the student's own saved tokenizer (how it ships: a word that needs a dropped piece is split into
kept pieces), and how many texts the two encode differently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import prepared  # noqa: E402


def _accuracy(model, tokenizer, texts, labels, max_length, mapping=None) -> float:
    preds = []
    for i in range(0, len(texts), 128):
        batch = tokenizer(texts[i : i + 128], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        if mapping is not None:
            batch["input_ids"] = mapping[batch["input_ids"]]
        with torch.no_grad():
            preds.append(model(**batch).logits.argmax(-1).numpy())
    return float((np.concatenate(preds) == labels).mean())


def main(argv: list[str]) -> int:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import autodistill  # noqa: F401  (registers the student architecture)

    config, folders = argv[0], argv[1:]
    prep = prepared(config, ["tracking.enabled=false"])
    teacher_tok, max_length = prep.teacher.tokenizer, prep.cfg.data.max_length
    for folder in folders:
        record = json.loads((Path(folder) / "autodistill_student.json").read_text())
        vocab = next((t for t in record["transforms"] if t["name"] == "vocab"), None)
        if vocab is None:
            print(f"{folder}: no vocab transform, both encodings are the same")
            continue
        kept = np.asarray(vocab["resolved"]["kept"])
        mapping = torch.full((len(teacher_tok),), int(np.searchsorted(kept, teacher_tok.unk_token_id)))
        mapping[torch.as_tensor(kept)] = torch.arange(len(kept))
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        own = AutoTokenizer.from_pretrained(folder)
        print(folder)
        for split in ("validation", "test"):
            data = prep.data.split(split)
            texts, labels = list(data.texts), np.asarray(data.labels)
            trained = _accuracy(model, teacher_tok, texts, labels, max_length, mapping)
            shipped = _accuracy(model, own, texts, labels, max_length)
            differ = sum(
                mapping[teacher_tok(t, truncation=True, max_length=max_length)["input_ids"]].tolist()
                != own(t, truncation=True, max_length=max_length)["input_ids"]
                for t in texts
            )
            print(
                f"  {split:<10} training encoding {trained:.4f}  shipped {shipped:.4f}  "
                f"({shipped - trained:+.4f}; {differ}/{len(texts)} texts encoded differently)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
