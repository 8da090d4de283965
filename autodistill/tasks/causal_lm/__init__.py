"""``task: causal-lm``: a decoder LLM teacher (a folder, a hub id, a GGUF file or the built-in
SmolLM2), text packed into token blocks (or prompt/response pairs), students cut from the teacher
(depth, heads by key/value group, MLP width, hidden size) and distilled from the teacher's cached
top-k logits, scored by perplexity and timed by generation speed, exported as an HF folder and GGUF.

``teacher.py`` loads (and converts) the teacher, ``data.py`` packs the text, ``cache.py`` and
``topk.py`` hold the top-k targets, ``student.py`` cuts students, ``losses.py`` the LM losses,
``train.py`` the loop, ``distill.py`` one student, ``measure.py`` and ``evaluate.py`` perplexity and
speed, ``gguf_export.py`` the GGUF file and ``card.py`` the model card."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodistill.config.run import RunConfig
from autodistill.registry import Registry
from autodistill.specs import LossSpec, StudentSpec, TrainSpec
from autodistill.tasks.base import TASKS, Components, Task, train_spec

# the search's proxies and the budget time generation with fewer repeats than export's report
SEARCH_REPEATS = 3


def _needs_hidden(term: Any) -> bool:
    from autodistill.tasks.causal_lm.losses import LM_LOSSES

    return term.name in LM_LOSSES and bool(getattr(LM_LOSSES.get(term.name), "needs_hidden", False))


@TASKS.register("causal-lm")
class CausalLM(Task):
    name = "causal-lm"
    formats = ("hf", "gguf", "onnx")
    metrics = ("quality", "perplexity", "top1_agreement", "kl")
    pipeline_tag = "text-generation"

    def components(self) -> Components:
        from autodistill.tasks.causal_lm.losses import LM_LOSSES
        from autodistill.tasks.causal_lm.student import LM_TRANSFORMS
        from autodistill.weighting import WEIGHTINGS

        static: Registry[Any] = Registry("causal-LM loss weighting")  # adaptive weightings read layer losses
        static.register("static")(WEIGHTINGS.get("static"))
        return Components(LM_TRANSFORMS, LM_LOSSES, static)

    def prepare(self, cfg: RunConfig, progress: bool = True) -> Any:
        from autodistill.tasks.causal_lm.prepare import prepare

        return prepare(cfg, progress=progress)

    def teacher(self, cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
        prep = self.prepare(cfg, progress=progress)
        t = prep.teacher
        return {
            "path": str(t.path),
            "fingerprint": t.fingerprint,
            "finetuned": t.finetuned,
            "adapted": t.info if t.finetuned else None,
            "converted": t.converted,
            "source": t.source,
            "tokens": prep.data.token_report(),
            **prep.teacher_metrics,
        }

    def predicted_parameters(self, prep: Any, student: StudentSpec) -> int:
        from autodistill.tasks.causal_lm.distill import transforms_of
        from autodistill.tasks.causal_lm.student import predict_parameters

        return predict_parameters(prep.teacher_model().config, transforms_of(student))

    def untrained_model(self, prep: Any, student: StudentSpec) -> Any | None:
        from autodistill.tasks.causal_lm.distill import transforms_of
        from autodistill.tasks.causal_lm.student import untrained_model

        return untrained_model(prep.teacher_model().config, transforms_of(student))

    def train_spec(self, cfg: RunConfig, n_examples: int) -> TrainSpec:
        return train_spec(cfg, n_examples)

    def proxy_indices(self, prep: Any, n: int, seed: int) -> np.ndarray:
        rows = len(prep.encoded["train"])
        return np.sort(np.random.default_rng(seed).permutation(rows)[: min(n, rows)])

    def distill(self, prep: Any, student: StudentSpec | None, loss: LossSpec, **options: Any) -> Any:
        from autodistill.tasks.causal_lm.distill import distill_student

        return distill_student(prep, student, loss, **options)

    def trial_metrics(self, run: Any) -> dict[str, float]:
        return {k: run.validation[k] for k in self.metrics}

    def shipped_quality(self, prep: Any, build: Any, split: str = "test") -> dict[str, float]:
        from autodistill.tasks.causal_lm.distill import split_metrics

        return split_metrics(prep, build.model, split)

    def latency_seq_len(self, cfg: RunConfig, prep: Any) -> int:
        from autodistill.tasks.causal_lm.evaluate import prompt_len

        return prompt_len(cfg)

    def rebuild(self, prep: Any, resolved: dict[str, Any]) -> Any:
        from autodistill.tasks.causal_lm.distill import LMBuild
        from autodistill.tasks.causal_lm.student import rebuild_student

        return LMBuild(rebuild_student(prep.teacher_model(), resolved["transforms"]), resolved["transforms"])

    def latency_b1(self, cfg: RunConfig, prep: Any, student: Any, teacher: Any) -> tuple[float, float]:
        """Milliseconds per decoded token at batch 1 (generation speed is this task's latency)."""
        from autodistill.tasks.causal_lm.evaluate import speeds

        s, t = speeds(cfg, [student, teacher], prep.vocab, repeats=min(cfg.evaluate.repeats, SEARCH_REPEATS))
        return s["decode_ms_per_token"], t["decode_ms_per_token"]

    def peak_memory_mb(self, cfg: RunConfig, prep: Any, model: Any) -> float:
        from autodistill.tasks.causal_lm.evaluate import prompt_len
        from autodistill.tasks.causal_lm.measure import peak_memory_mb

        # two new tokens: the profiler records every op of the call (about 27 s for SmolLM2 and 16
        # tokens), and the peak is the weights, the prompt's activations and the KV cache either way
        return peak_memory_mb(model, prompt_len(cfg), 2)

    def prediction_energy(self, cfg: RunConfig, prep: Any, model: Any) -> dict[str, Any]:
        """Joules per 1,000 decoded tokens at batch 1 (a causal LM's prediction is a token)."""
        from autodistill.tasks.causal_lm.evaluate import token_energy

        return token_energy(cfg, model, prep.vocab)

    def measure_models(self, cfg: RunConfig, prep: Any, models: list[Any]) -> list[dict[str, Any]]:
        from autodistill.tasks.causal_lm.evaluate import measure_models

        return measure_models(cfg, models, prep.vocab)

    def metric(self, cfg: RunConfig) -> str:
        return "perplexity"  # quality = 1 / perplexity

    def data_record(self, prep: Any) -> dict[str, Any]:
        return {
            "source": prep.data.source,
            "kind": prep.data.kind,
            "block_size": prep.data.block_size,
            "top_k": prep.cfg.distill.top_k,
            "tokens": prep.data.token_report(),
            **{s: len(prep.encoded[s]) for s in ("train", "validation", "test")},
        }

    def cache_plan(self, prep: Any, samples: list[Any]) -> dict[str, Any]:
        """The top-k targets of every split now; a hidden-state term adds, at most, every teacher
        layer's states for the training tokens (fp16)."""
        folder = prep.targets["train"].folder
        sizes = [p.stat().st_size for store in prep.targets.values() for p in store.folder.glob("*.npy")]
        growth = 0.0
        if any(_needs_hidden(t) for s in samples for t in s.loss.terms):
            config = prep.teacher_model().config
            tokens = int(np.asarray(prep.encoded["train"].attention_mask).sum())
            growth = 2 * config.hidden_size * tokens * config.num_hidden_layers / 1e6
        return {
            "cache_mb": round(sum(sizes) / 1e6, 2),
            "cache_growth_mb_max": round(growth, 1),
            "cache_folder": str(folder),
        }

    def probe_loss(self, loss: LossSpec) -> LossSpec:
        """Terms on the top-k targets only (forward KL when none is left): the probe fills no cache."""
        from dataclasses import replace

        from autodistill.specs import Step

        kept = tuple(t for t in loss.terms if not _needs_hidden(t))
        return replace(loss, terms=kept or (Step("fkl", {"weight": 1.0}),))

    def save_student(self, build: Any, prep: Any, folder: Path) -> None:
        build.save(folder, prep.teacher.tokenizer)

    def evaluate_folder(self, cfg: RunConfig, model_dir: str, split: str, progress: bool = True) -> dict[str, Any]:
        from autodistill.tasks.causal_lm.evaluate import run_evaluate

        return run_evaluate(cfg, model_dir, split=split, progress=progress)

    def check_formats(self, prep: Any, formats: tuple[str, ...], students: Sequence[dict] = ()) -> None:
        """GGUF needs a llama-layout teacher (its students keep its layout), a byte-level BPE
        tokenizer and a stock student (no ``low_rank`` factors); ONNX an architecture torch.onnx
        exports (not mixture-of-experts, under 2 GB)."""
        from autodistill.errors import ConfigError
        from autodistill.tasks.causal_lm.gguf_export import gguf_supported, gguf_tokenizer_supported
        from autodistill.tasks.causal_lm.onnx_export import onnx_supported

        teacher = prep.teacher_model()
        why = None
        if "gguf" in formats:
            why = gguf_supported(teacher.config) or gguf_tokenizer_supported(prep.teacher.tokenizer)
        factored = any(t.get("name") == "low_rank" for s in students for t in s.get("transforms") or [])
        if why is None and "gguf" in formats and factored:
            why = "the picked student has low-rank factors (low_rank), which no llama.cpp architecture holds"
        if why is None and "onnx" in formats:
            why = onnx_supported(teacher)  # a student is never larger than its teacher
            why = why if why is None or "GB" not in why else None
        if why is not None:
            raise ConfigError(
                f"The '--formats' option lists gguf, which this teacher's students cannot be written as: {why}."
            )

    def export_formats(self, final: Any, prep: Any, folder: Path, formats: tuple[str, ...]) -> dict[str, Any]:
        from autodistill.tasks.causal_lm.gguf_export import write_gguf
        from autodistill.tasks.causal_lm.onnx_export import write_onnx

        model = final.run.build.export_model().to("cpu").eval()
        out: dict[str, Any] = {}
        if "gguf" in formats:
            out["gguf"] = write_gguf(model, prep.teacher.tokenizer, folder / "model.gguf", dtype="f16")
        if "onnx" in formats:  # a full-sequence scorer (logits for every position), no KV cache
            out["onnx"] = write_onnx(model, folder / "model.onnx", vocab=prep.vocab)
        return out

    def model_card(self, result: dict[str, Any]) -> str:
        from autodistill.tasks.causal_lm.card import model_card

        return model_card(result)
