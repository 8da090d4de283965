"""Data: built-in offline sets, files, Hugging Face datasets; checked splits; tokenize once, pad per batch."""

from __future__ import annotations

from autodistill.data.builtin import BUILTINS
from autodistill.data.encode import Encoded, batch_indices, collate, encode, token_counts, tokenizer_fingerprint
from autodistill.data.load import load_task_data
from autodistill.data.splits import stratified_subset
from autodistill.data.types import SPLITS, TaskData, TextSplit

__all__ = [
    "BUILTINS",
    "SPLITS",
    "Encoded",
    "TaskData",
    "TextSplit",
    "batch_indices",
    "collate",
    "encode",
    "load_task_data",
    "stratified_subset",
    "token_counts",
    "tokenizer_fingerprint",
]
