"""The model card: every number of the export record, the kind and how to load it."""

from __future__ import annotations

import copy

from autodistill.tasks.sequence_classification.card import model_card

LAT = {"latency_ms_b1": 9.87, "latency_ms_b32": 65.4}
RECORD = {
    "study": {"name": "demo", "space": "fast", "objectives": ["quality", "parameters"], "trained": 12, "front": 4},
    "pick": {
        "trial": 7,
        "rule": "--max-params 9000000",
        "on_front": True,
        "strategy": {
            "student": {
                "transforms": [
                    {"name": "depth", "layers": 2, "choice": "uniform"},
                    {"name": "heads", "ratio": 0.5},
                    {"name": "lora", "r": 8},
                ]
            },
            "loss": {
                "terms": [{"name": "kl", "weight": 1.0}, {"name": "hidden_mse", "weight": 0.3}],
                "temperature": 3.5,
                "layer_map": "uniform",
                "weighting": {"name": "dwa"},
            },
            "train": {"lr": 0.0003},
        },
    },
    "proxy": {"validation_quality": 0.7712, "reproduced_validation_quality": None},
    "train": {"mode": "retrained", "mode_text": "full-length distillation (534 steps)"},
    "student": {
        "kind": "registered",
        "lora_merged": True,
        "test": {"quality": 0.8123, "accuracy": 0.8123, "macro_f1": 0.8101},
        "validation": {"quality": 0.8011},
        "parameters": {"total": 8_765_432, "without_embeddings": 1_234_567},
        "size_mb": 35.06,
        "latency_ms": {"latency_ms_b1": 3.21, "latency_ms_b32": 21.5},
    },
    "teacher": {
        "name": "builtin:minilm",
        "finetuned": True,
        "training": {
            "steps": 801,
            "best_step": 534,
            "stopped": "step cap",
            "seconds": 300.0,
            "epochs": 3,
            "max_steps": None,
            "patience": None,
        },
        "test": {"quality": 0.8456, "accuracy": 0.8456, "macro_f1": 0.8450},
        "validation": {"quality": 0.8399},
        "parameters": {"total": 22_713_602, "without_embeddings": 10_000_000},
        "size_mb": 90.86,
        "latency_ms": LAT,
    },
    "relative": {"test_quality_ratio": 0.8123 / 0.8456, "parameter_ratio": 0.386},
    "latency": {"seq_len": 40, "threads": 1, "repeats": 10},
    "budget": {"max_parameters": 9_000_000},
    "data": {
        "source": "builtin:rotten_tomatoes",
        "labels": ["negative", "positive"],
        "train": 8530,
        "validation": 1066,
        "test": 1066,
    },
    "metric": "accuracy",
    "formats": {
        "hf": {"file": "model.safetensors"},
        "pytorch": {
            "file": "model.safetensors",
            "size_mb": 35.06,
            "test_quality": 0.8123,
            "agreement": 1.0,
            "latency_ms": LAT,
        },
        "onnx": {
            "file": "onnx/model.onnx",
            "size_mb": 35.2,
            "test_quality": 0.8123,
            "agreement": 1.0,
            "latency_ms": {"latency_ms_b1": 2.5, "latency_ms_b32": 18.25},
            "teacher_latency_ms": {"latency_ms_b1": 7.5, "latency_ms_b32": 61.0},
        },
        "int8": {
            "file": "onnx/model.int8.onnx",
            "size_mb": 9.1,
            "test_quality": 0.8077,
            "agreement": 0.991,
            "latency_ms": {"latency_ms_b1": 1.75, "latency_ms_b32": 9.5},
        },
    },
    "out_name": "export",
}


def test_card_holds_every_number_and_the_strategy():
    card = model_card(RECORD)
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification")
    for text in (
        "0.8123",
        "0.8456",
        "0.7712",
        "8,765,432",
        "22,713,602",
        "35.06",
        "90.86",
        "3.21",
        "9.87",
        "trial 7",
        "--max-params 9000000",
        "builtin:minilm",
        "builtin:rotten_tomatoes",
        "8,530",
        "`depth` (layers=2, choice=uniform)",
        "`hidden_mse` (weight=0.3)",
        "temperature 3.5",
        "`dwa`",
        '"lr": 0.0003',
        '"max_parameters": 9000000',
        "pareto.png",
        "0.8077",
        "9.50",
        "onnx/model.int8.onnx",
        "| share of the teacher's test accuracy | 100% | 96.1% |",
        "| 18.25 | 7.50 / 61.00 |",
        "fine-tuned here for 801 steps (at most 3 epochs), best validation at step 534; stopped: step cap",
    ):
        assert text in card, text
    rows = [line for line in card.splitlines() if line.startswith("| test accuracy |")]
    assert len(rows) == 1  # the metric row is not repeated when the metric is accuracy


def test_registered_card_says_import_autodistill_and_onnx_and_lora_merged():
    card = model_card(RECORD)
    assert "Kind: registered" in card and "import autodistill" in card and "onnx/model.onnx" in card
    assert "first ([CLS]) position" in card and "first_token_last_layer: false" in card
    assert "LoRA adapters" in card and "merged" in card


def test_stock_card_needs_transformers_alone():
    r = copy.deepcopy(RECORD)
    r["student"].update(kind="stock", lora_merged=False)
    del r["formats"]["onnx"], r["formats"]["int8"]
    card = model_card(r)
    assert "Kind: stock" in card and "transformers alone" in card and "import autodistill" not in card
    assert "LoRA" not in card and "## ONNX" not in card


def test_candidates_line_gives_the_validation_noise_for_accuracy_only():
    from autodistill.tasks.sequence_classification.card import _candidates

    rows = [
        {"trial": 3, "proxy_validation": 0.80, "final_validation": 0.85},
        {"trial": 7, "proxy_validation": 0.79, "final_validation": 0.84},
    ]
    line = _candidates(rows, 1066, "accuracy")[0]
    assert "trial 3: 0.8500 (proxy 0.8000); trial 7: 0.8400 (proxy 0.7900)" in line
    assert "On 1,066 validation examples an accuracy of 0.85 has a standard error of about 1.1 points" in line
    assert "standard error" not in _candidates(rows, 1066, "macro_f1")[0]
    assert "standard error" not in _candidates(rows, None, "accuracy")[0]  # an export made before it was recorded
    assert _candidates([], 1066, "accuracy") == []


def test_card_shows_recall_per_class_and_flags_a_dropped_class():
    r = copy.deepcopy(RECORD)
    assert "## Per class" not in model_card(r)  # no report, no section
    r["classes"] = {
        "split": "test", "classes": ["negative", "positive"], "support": [533, 533],
        "teacher_recall": [0.84, 0.85], "student_recall": [0.81, 0.8],
        "dropped": [],
    }  # fmt: skip
    card = model_card(r)
    assert "| negative | 533 | 0.8400 | 0.8100 |" in card and "Warning" not in card
    r["classes"]["student_recall"] = [0.98, 0.3]
    r["classes"]["dropped"] = ["positive"]
    assert "**Warning:** the student drops `positive`" in model_card(r)


def test_card_gives_the_budgets_runtime_latency_for_both():
    r = copy.deepcopy(RECORD)
    r["student"]["runtime_latency"] = {"runtime": "onnx", "latency_ms_b1": 0.81}
    r["teacher"]["runtime_latency"] = {"runtime": "onnx", "latency_ms_b1": 3.3}
    assert "| CPU latency b1 in onnx, the budget's runtime (ms) | 3.30 | 0.81 |" in model_card(r)


def test_card_gives_energy_per_1000_predictions_and_the_final_trainings_joules():
    r = copy.deepcopy(RECORD)
    r["student"]["energy"] = {"joules_per_1000": 1.25, "method": "estimated", "predictions": 500}
    r["teacher"]["energy"] = {"joules_per_1000": 4.5, "method": "estimated", "predictions": 200}
    r["train"]["energy"] = {"joules": 1234.0, "seconds": 60.0, "method": "estimated"}
    card = model_card(r)
    assert "| energy per 1,000 predictions, batch 1 (J, estimated, codecarbon) | 4.50 | 1.25 |" in card
    assert "it used 1,234 J (estimated, codecarbon)" in card
