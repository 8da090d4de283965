"""How far a vocabulary-pruned student's scores move between its training encoding and its shipped one.

    python benchmarks/encoding_gap.py configs/demo.yaml EXPORTED_FOLDER [EXPORTED_FOLDER ...]

For each exported student, on validation and test: accuracy with the teacher's tokens mapped
through the student's token map (dropped pieces become [UNK]: how the student trains and how
search proxies score it) and with the student's own saved tokenizer (how it ships, and how
full-length runs score validation: a word that needs a dropped piece is split into kept pieces),
and how many texts the two encode differently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import prepared  # noqa: E402


def main(argv: list[str]) -> int:
    from transformers import AutoModelForSequenceClassification

    import autodistill  # noqa: F401  (registers the student architecture)
    from autodistill.student.build import RECORD_FILE, rebuild_student
    from autodistill.tasks.sequence_classification.distill import shipped_split, student_quality

    config, folders = argv[0], argv[1:]
    prep = prepared(config, ["tracking.enabled=false"])
    for folder in folders:
        record = json.loads((Path(folder) / RECORD_FILE).read_text())
        built = rebuild_student(prep.teacher_model(), record)  # the token map and tokenizer; weights below
        if built.token_id_map is None:
            print(f"{folder}: no vocabulary change, both encodings are the same")
            continue
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        id_map = torch.as_tensor(np.asarray(built.token_id_map), dtype=torch.long)
        print(folder)
        for split in ("validation", "test"):
            shipped = shipped_split(prep, built, split)
            trained_q = student_quality(prep, model, split, id_map)["quality"]
            shipped_q = student_quality(prep, model, split, None, shipped)["quality"]
            mapped = [built.token_id_map[ids] for ids in prep.encoded[split].input_ids]
            differ = sum(not np.array_equal(a, b) for a, b in zip(mapped, shipped[0].input_ids))
            print(
                f"  {split:<10} training encoding {trained_q:.4f}  shipped {shipped_q:.4f}  "
                f"({shipped_q - trained_q:+.4f}; {differ}/{len(mapped)} texts encoded differently)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
