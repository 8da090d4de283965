"""Causal-LM students cut from the teacher: fewer layers, key/value groups, MLP neurons or hidden channels.

Each transform works as the encoder transforms do (``autodistill.student.base``), on the
Hugging Face config and state dict instead of a ModelShape: ``plan`` gives the edited config
without weights, ``resolve`` makes the data-dependent choices (kept indices) as a JSON-able
record, ``apply`` is a pure edit of the state dict and config from that record. The student is
the teacher's own class built from the edited config, so it is a stock model that
``save_pretrained`` writes and ``AutoModelForCausalLM`` loads; ``rebuild_student`` gives the same
weights again from the records, without data.

Supported teachers: Llama-layout decoders (llama, mistral, qwen2, qwen3) take every transform;
GPT-2 takes ``depth`` only. Every layer keeps the same counts, so the config stays uniform.

``lora``, last in the list, cuts nothing: it trains low-rank adapters on the student the shape
transforms cut (``wrap`` gives a peft model whose other weights are frozen), and
:func:`shipped_model` merges them into a plain model of the teacher's class, with the parameter
count the shape transforms planned.
"""

from __future__ import annotations

import copy
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from transformers import AutoModelForCausalLM
from transformers.initialization import no_init_weights

from autodistill.config.schema import Invalid, parse, require
from autodistill.errors import ConfigError, TeacherError
from autodistill.registry import Registry, RegistryError
from autodistill.tasks.causal_lm import importance as imp
from autodistill.tasks.causal_lm.factored import model_class

State = dict[str, torch.Tensor]

_ALL = ("depth", "heads", "mlp", "hidden", "low_rank")
_LLAMA = ("llama", "mistral", "qwen2", "qwen3")
SUPPORTED: dict[str, tuple[str, ...]] = {**{arch: _ALL for arch in _LLAMA}, "gpt2": ("depth",)}
# transforms that train the student differently rather than cut it: every supported architecture
# takes them, and they come after the shape transforms
TRAINING = ("lora",)


def supported_transforms(config: Any) -> tuple[str, ...]:
    """The shape transforms a teacher of this config's architecture takes; () when it is not
    supported (a supported one also takes the ``TRAINING`` transforms)."""
    return SUPPORTED.get(getattr(config, "model_type", None), ())


def _layer_prefix(config: Any) -> str:
    return "transformer.h" if config.model_type == "gpt2" else "model.layers"


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _misfit(what: str) -> ConfigError:
    return ConfigError(f"The student record does not fit this teacher: {what}.")


def _share(share: float, total: int, multiple: int) -> int:
    """``share`` of ``total`` rounded (half up) to a multiple of ``multiple``, at least one multiple
    and at most ``total``; a share of 1 keeps everything."""
    if share >= 1.0:
        return total
    return min(total, max(multiple, multiple * math.floor(share * total / multiple + 0.5)))


def _top(scores: list[float] | torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` highest scores, in their original order (ties: the lower index)."""
    values = [float(v) for v in scores]
    return sorted(sorted(range(len(values)), key=lambda i: (-values[i], i))[:k])


def _rows(state: State, prefix: str, idx: torch.Tensor) -> None:
    """Keep output features ``idx`` of the Linear at ``prefix`` (weight rows and bias)."""
    for suffix in ("weight", "bias"):
        if f"{prefix}.{suffix}" in state:
            state[f"{prefix}.{suffix}"] = state[f"{prefix}.{suffix}"].index_select(0, idx).contiguous()


def _cols(state: State, prefix: str, idx: torch.Tensor) -> None:
    """Keep input features ``idx`` of the Linear at ``prefix``."""
    state[f"{prefix}.weight"] = state[f"{prefix}.weight"].index_select(1, idx).contiguous()


def _layers_module(model: Any) -> torch.nn.ModuleList:
    return model.get_submodule(_layer_prefix(model.config))


class LMTransform(ABC):
    """One way of cutting a causal LM; see the module docstring for the three steps."""

    name: ClassVar[str]
    Options: ClassVar[type]

    @abstractmethod
    def plan(self, config: Any, options: Any) -> Any:
        """The edited config (a copy), no weights; shape-dependent option checks raise Invalid."""

    def needs_data(self, config: Any, options: Any) -> bool:
        """Does ``resolve`` score importance on calibration tokens for these options?"""
        return False

    @abstractmethod
    def resolve(self, model: Any, config: Any, options: Any, calibration: torch.Tensor | None) -> dict[str, Any]:
        """The kept indices as a JSON-able record (``model``: the student so far, for the scores)."""

    @abstractmethod
    def apply(self, state: State, config: Any, resolved: dict[str, Any]) -> tuple[State, Any]:
        """The state dict and config cut as ``resolved`` says (a pure function of the three)."""

    def wrap(self, model: Any, resolved: dict[str, Any]) -> Any:
        """The built student as it trains (``lora``: with adapters); the model itself by default."""
        return model


LM_TRANSFORMS: Registry[type[LMTransform]] = Registry("causal-LM student transform")


# --- depth ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthOptions:
    layers: int | None = field(default=None, metadata={"help": "how many layers to keep"})
    keep: float | None = field(default=None, metadata={"help": "share of the layers to keep (0, 1]"})
    choice: Literal["importance", "uniform", "first"] = field(
        default="importance", metadata={"help": "block influence (ShortGPT), evenly spaced, or the first ones"}
    )

    def __post_init__(self) -> None:
        require(
            not (self.layers is not None and self.keep is not None),
            "keep",
            "must be left out when 'layers' is given (give one of them)",
            self.keep,
        )
        require(
            self.layers is not None or self.keep is not None,
            "layers",
            "is required, or 'keep' (give one of them: how many layers to keep)",
            None,
        )
        require(self.layers is None or self.layers >= 1, "layers", "must be >= 1", self.layers)
        require(self.keep is None or 0 < self.keep <= 1, "keep", "must be in (0, 1]", self.keep)


def uniform_layers(total: int, k: int) -> list[int]:
    """``k`` evenly spaced indices of ``range(total)`` keeping the first and the last (4, 3 -> 0, 2, 3)."""
    if k == 1:
        return [0]
    return [(j * (total - 1) + (k - 1) // 2) // (k - 1) for j in range(k)]


def _with_layers(config: Any, keep: list[int]) -> Any:
    """The config with layers ``keep`` only (per-layer attention types follow their layers)."""
    new = copy.deepcopy(config)
    new.num_hidden_layers = len(keep)
    if isinstance(getattr(config, "layer_types", None), list):
        new.layer_types = [config.layer_types[i] for i in keep]
    if isinstance(getattr(config, "max_window_layers", None), int):
        new.max_window_layers = sum(1 for i in keep if i < config.max_window_layers)
    return new


@LM_TRANSFORMS.register("depth")
class Depth(LMTransform):
    name = "depth"
    Options = DepthOptions

    def _count(self, config: Any, options: DepthOptions) -> int:
        n = config.num_hidden_layers
        if options.layers is not None:
            if options.layers > n:
                raise Invalid(
                    "layers", f"must be at most the {n} layers of the model it cuts. Got {options.layers} instead."
                )
            return options.layers
        k = math.floor(options.keep * n + 0.5)
        if k < 1:
            raise Invalid(
                "keep", f"keeps no layer of {n} (rounded); it must keep at least one. Got {options.keep} instead."
            )
        return k

    def _fixed(self, n: int, k: int, choice: str) -> list[int]:
        return list(range(k)) if choice == "first" else uniform_layers(n, k)

    def plan(self, config: Any, options: DepthOptions) -> Any:
        # importance picks its layers on data: evenly spaced ones stand in for per-layer config
        # entries (attention types), which only a model with mixed layer types has
        k = self._count(config, options)
        return _with_layers(config, self._fixed(config.num_hidden_layers, k, options.choice))

    def needs_data(self, config: Any, options: DepthOptions) -> bool:
        return options.choice == "importance" and self._count(config, options) < config.num_hidden_layers

    def resolve(self, model: Any, config: Any, options: DepthOptions, calibration: torch.Tensor | None) -> dict:
        n, k = config.num_hidden_layers, self._count(config, options)
        if not self.needs_data(config, options):
            return {"from_layers": n, "keep": self._fixed(n, k, options.choice)}
        scores = imp.block_influence(model, _layers_module(model), calibration)
        return {"from_layers": n, "keep": _top(scores, k), "block_influence": [round(s, 8) for s in scores]}

    def apply(self, state: State, config: Any, resolved: dict[str, Any]) -> tuple[State, Any]:
        n, keep = config.num_hidden_layers, [int(i) for i in resolved["keep"]]
        if resolved.get("from_layers", n) != n or not keep or keep != sorted(set(keep)) or keep[-1] >= n:
            raise _misfit(f"depth keeps layers {keep} of {resolved.get('from_layers')}, the model has {n}")
        prefix = _layer_prefix(config)
        pattern, new_index = (
            re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$"),
            {old: new for new, old in enumerate(keep)},
        )
        out: State = {}
        for key, value in state.items():
            m = pattern.match(key)
            if m is None:
                out[key] = value
            elif int(m.group(1)) in new_index:
                out[f"{prefix}.{new_index[int(m.group(1))]}.{m.group(2)}"] = value
        return out, _with_layers(config, keep)


# --- heads (key/value groups) --------------------------------------------------------------


@dataclass(frozen=True)
class HeadsOptions:
    kv_groups: int = field(metadata={"help": "key/value groups kept per layer, each with all its query heads"})

    def __post_init__(self) -> None:
        require(self.kv_groups >= 1, "kv_groups", "must be >= 1", self.kv_groups)


def _with_groups(config: Any, groups: int) -> Any:
    new = copy.deepcopy(config)
    per_group = config.num_attention_heads // config.num_key_value_heads
    new.head_dim = _head_dim(config)
    new.num_attention_heads, new.num_key_value_heads = groups * per_group, groups
    return new


@LM_TRANSFORMS.register("heads")
class Heads(LMTransform):
    name = "heads"
    Options = HeadsOptions

    def plan(self, config: Any, options: HeadsOptions) -> Any:
        kv = config.num_key_value_heads
        if options.kv_groups > kv:
            raise Invalid(
                "kv_groups",
                f"must be at most the {kv} key/value heads of the model it cuts. Got {options.kv_groups} instead.",
            )
        return _with_groups(config, options.kv_groups)

    def needs_data(self, config: Any, options: HeadsOptions) -> bool:
        return options.kv_groups < config.num_key_value_heads

    def resolve(self, model: Any, config: Any, options: HeadsOptions, calibration: torch.Tensor | None) -> dict:
        kv, n = config.num_key_value_heads, config.num_hidden_layers
        if not self.needs_data(config, options):
            return {"from_groups": kv, "keep": [list(range(kv)) for _ in range(n)]}
        scores = imp.group_scores(model, _layers_module(model), calibration, _head_dim(config), kv)
        keep = [_top(s, options.kv_groups) for s in scores]
        return {"from_groups": kv, "keep": keep, "scores": [[round(v, 8) for v in s] for s in scores]}

    def apply(self, state: State, config: Any, resolved: dict[str, Any]) -> tuple[State, Any]:
        kv, keep = config.num_key_value_heads, resolved["keep"]
        sizes = {len(k) for k in keep}
        fits = resolved.get("from_groups", kv) == kv and len(keep) == config.num_hidden_layers and len(sizes) == 1
        if not fits or not all(0 <= g < kv for k in keep for g in k) or 0 in sizes:
            raise _misfit(
                f"heads keeps groups {keep} of {resolved.get('from_groups')}, the model has {kv} in each layer"
            )
        state, hd, per_group = dict(state), _head_dim(config), config.num_attention_heads // kv
        for i, groups in enumerate(keep):
            kv_rows = torch.cat([torch.arange(g * hd, (g + 1) * hd) for g in groups])
            q_rows = torch.cat([torch.arange(g * per_group * hd, (g + 1) * per_group * hd) for g in groups])
            attn = f"model.layers.{i}.self_attn"
            _rows(state, f"{attn}.q_proj", q_rows)
            _rows(state, f"{attn}.k_proj", kv_rows)
            _rows(state, f"{attn}.v_proj", kv_rows)
            _cols(state, f"{attn}.o_proj", q_rows)
        return state, _with_groups(config, len(keep[0]))


# --- mlp -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareOptions:
    keep: float = field(metadata={"help": "share kept (0, 1], rounded to a multiple of 8, at least 8"})

    def __post_init__(self) -> None:
        require(0 < self.keep <= 1, "keep", "must be in (0, 1]", self.keep)


def _with_intermediate(config: Any, size: int) -> Any:
    new = copy.deepcopy(config)
    new.intermediate_size = size
    return new


@LM_TRANSFORMS.register("mlp")
class Mlp(LMTransform):
    name = "mlp"
    Options = ShareOptions

    def plan(self, config: Any, options: ShareOptions) -> Any:
        return _with_intermediate(config, _share(options.keep, config.intermediate_size, 8))

    def needs_data(self, config: Any, options: ShareOptions) -> bool:
        return _share(options.keep, config.intermediate_size, 8) < config.intermediate_size

    def resolve(self, model: Any, config: Any, options: ShareOptions, calibration: torch.Tensor | None) -> dict:
        size, n = config.intermediate_size, config.num_hidden_layers
        k = _share(options.keep, size, 8)
        if k == size:
            return {"from_size": size, "keep": [list(range(size)) for _ in range(n)]}
        scores = imp.neuron_scores(model, _layers_module(model), calibration)
        return {"from_size": size, "keep": [_top(s, k) for s in scores]}

    def apply(self, state: State, config: Any, resolved: dict[str, Any]) -> tuple[State, Any]:
        size, keep = config.intermediate_size, resolved["keep"]
        sizes = {len(k) for k in keep}
        fits = resolved.get("from_size", size) == size and len(keep) == config.num_hidden_layers and len(sizes) == 1
        if not fits or 0 in sizes or not all(0 <= j < size for k in keep for j in k):
            raise _misfit(f"mlp keeps neurons of {resolved.get('from_size')}, the model has {size} in each layer")
        state = dict(state)
        for i, neurons in enumerate(keep):
            idx = torch.as_tensor(neurons, dtype=torch.long)
            _rows(state, f"model.layers.{i}.mlp.gate_proj", idx)
            _rows(state, f"model.layers.{i}.mlp.up_proj", idx)
            _cols(state, f"model.layers.{i}.mlp.down_proj", idx)
        return state, _with_intermediate(config, len(keep[0]))


# --- hidden --------------------------------------------------------------------------------


def _with_hidden(config: Any, size: int) -> Any:
    new = copy.deepcopy(config)
    new.head_dim = _head_dim(config)  # no longer hidden_size // num_attention_heads
    new.hidden_size = size
    return new


def _cut_hidden(state: State, config: Any, idx: torch.Tensor) -> None:
    """Keep hidden channels ``idx`` everywhere the residual stream is read or written."""
    state["model.embed_tokens.weight"] = state["model.embed_tokens.weight"].index_select(1, idx).contiguous()
    if getattr(config, "tie_word_embeddings", False):
        state["lm_head.weight"] = state["model.embed_tokens.weight"]  # one tensor, as in the model
    else:
        _cols(state, "lm_head", idx)
    _rows(state, "model.norm", idx)
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}"
        for name in ("input_layernorm", "post_attention_layernorm", "self_attn.o_proj", "mlp.down_proj"):
            _rows(state, f"{layer}.{name}", idx)
        for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"):
            _cols(state, f"{layer}.{name}", idx)


@LM_TRANSFORMS.register("hidden")
class Hidden(LMTransform):
    name = "hidden"
    Options = ShareOptions

    def plan(self, config: Any, options: ShareOptions) -> Any:
        return _with_hidden(config, _share(options.keep, config.hidden_size, 8))

    def needs_data(self, config: Any, options: ShareOptions) -> bool:
        return _share(options.keep, config.hidden_size, 8) < config.hidden_size

    def resolve(self, model: Any, config: Any, options: ShareOptions, calibration: torch.Tensor | None) -> dict:
        size = config.hidden_size
        k = _share(options.keep, size, 8)
        if k == size:
            return {"from_size": size, "keep": list(range(size))}
        return {"from_size": size, "keep": _top(imp.channel_scores(model, _layers_module(model), calibration), k)}

    def apply(self, state: State, config: Any, resolved: dict[str, Any]) -> tuple[State, Any]:
        size, keep = config.hidden_size, [int(j) for j in resolved["keep"]]
        if resolved.get("from_size", size) != size or not keep or not all(0 <= j < size for j in keep):
            raise _misfit(f"hidden keeps channels of {resolved.get('from_size')}, the model has {size}")
        state = dict(state)
        _cut_hidden(state, config, torch.as_tensor(keep, dtype=torch.long))
        return state, _with_hidden(config, len(keep))


# --- lora ----------------------------------------------------------------------------------

# the linear projections of one decoder layer, by architecture: lora's default and allowed targets
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    **{arch: ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj") for arch in _LLAMA},
    "gpt2": ("c_attn", "c_proj", "c_fc"),
}


@dataclass(frozen=True)
class LoraOptions:
    r: int = field(default=16, metadata={"help": "rank of each adapter"})
    alpha: float | None = field(default=None, metadata={"help": "the update is (alpha / r) * B @ A; 2 r if unset"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapters' input, in [0, 1)"})
    targets: list[str] | None = field(
        default=None, metadata={"help": "projections that get adapters; all of a decoder layer's if unset"}
    )
    train_embeddings: bool = field(default=False, metadata={"help": "train the token embeddings and lm_head too"})

    def __post_init__(self) -> None:
        require(self.r >= 1, "r", "must be >= 1", self.r)
        require(self.alpha is None or self.alpha > 0, "alpha", "must be > 0 (or left out for 2 r)", self.alpha)
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)", self.dropout)
        require(self.targets is None or len(self.targets) > 0, "targets", "must name a projection", self.targets)


@LM_TRANSFORMS.register("lora")
class Lora(LMTransform):
    """Low-rank adapters (Hu et al. 2022, through peft) on the student cut so far: the shape and
    the weights stay as they are, ``wrap`` adds the adapters and freezes everything else (norms
    included, as peft's ``get_peft_model`` does; embeddings and lm_head unless
    ``train_embeddings``), and :func:`shipped_model` merges them back into a plain model."""

    name = "lora"
    Options = LoraOptions

    def _targets(self, config: Any, options: LoraOptions) -> list[str]:
        valid = LORA_TARGETS[config.model_type]
        targets = list(valid) if options.targets is None else list(options.targets)
        wrong = [t for t in targets if t not in valid]
        if wrong or len(set(targets)) != len(targets):
            raise Invalid(
                "targets",
                f"must name distinct linear projections of a {config.model_type} decoder layer "
                f"({', '.join(valid)}). Got {targets} instead.",
            )
        return targets

    def plan(self, config: Any, options: LoraOptions) -> Any:
        self._targets(config, options)
        return copy.deepcopy(config)  # merged adapters add no parameter to the shipped student

    def resolve(self, model: Any, config: Any, options: LoraOptions, calibration: torch.Tensor | None) -> dict:
        return {
            "r": options.r,
            "alpha": float(2 * options.r if options.alpha is None else options.alpha),
            "dropout": float(options.dropout),
            "targets": self._targets(config, options),
            "train_embeddings": options.train_embeddings,
            "init_seed": 0,
        }

    def apply(self, state: State, config: Any, resolved: dict[str, Any]) -> tuple[State, Any]:
        return state, copy.deepcopy(config)

    def wrap(self, model: Any, resolved: dict[str, Any]) -> Any:
        """A peft model: adapters on the target projections, every other weight frozen. Each A is
        drawn from a generator seeded with ``init_seed`` and each B starts at zero (peft's LoRA
        initialisation), so the wrapped student computes exactly what ``model`` did and a record
        always gives the same adapters."""
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=int(resolved["r"]),
            lora_alpha=float(resolved["alpha"]),
            lora_dropout=float(resolved["dropout"]),
            target_modules=list(resolved["targets"]),
            fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores its weight transposed
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(resolved.get("init_seed", 0)))
            wrapped = get_peft_model(model, config)
        if resolved.get("train_embeddings", False):
            # the base model's own tensors, not peft's modules_to_save copies: a copy of a tied
            # embedding would untie it, and merge_and_unload keeps these trained tensors as they are
            for module in (model.get_input_embeddings(), model.get_output_embeddings()):
                module.weight.requires_grad_(True)
        return wrapped


def is_adapted(model: Any) -> bool:
    """Does ``model`` carry LoRA adapters (a peft model)?"""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def plain_class(model: Any) -> type:
    """The class of the model the student ships as (the teacher's)."""
    return type(model.get_base_model()) if is_adapted(model) else type(model)


def shipped_model(model: Any) -> torch.nn.Module:
    """The plain model the student ships as: ``model`` itself, or for an adapted student a copy
    with the adapters merged into its weights (the teacher's class, no peft module, every weight
    trainable), so that ``model`` keeps its adapters and can go on training."""
    if not is_adapted(model):
        return model
    merged = copy.deepcopy(model).merge_and_unload()
    return merged.requires_grad_(True)


# --- composing -----------------------------------------------------------------------------


def parse_steps(transforms: list[dict]) -> list[tuple[str, Any]]:
    """``[{name: ..., <options>}, ...]`` -> ``[(name, Options), ...]``; a ConfigError names the key."""
    if not isinstance(transforms, (list, tuple)):
        raise ConfigError(f"The 'student.transforms' parameter must be a list. Got {transforms!r} instead.")
    steps = []
    for i, raw in enumerate(transforms):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            names = ", ".join(_ALL + TRAINING)
            raise ConfigError(f"The 'student.transforms[{i}].name' parameter is required (one of {names}).")
        try:
            cls = LM_TRANSFORMS.get(raw["name"])
        except RegistryError:
            shape = ", ".join(n for n in LM_TRANSFORMS.names() if n not in TRAINING)
            raise ConfigError(
                f"The 'student.transforms[{i}].name' parameter must be one of the shape transforms {shape}, or, "
                f"last, {' or '.join(TRAINING)}. Got {raw['name']!r} instead."
            ) from None
        opts = {k: v for k, v in raw.items() if k != "name"}
        steps.append((raw["name"], parse(cls.Options, opts, f"student.transforms[{i}]")))
    names = [name for name, _ in steps]
    if "low_rank" in names:
        at = names.index("low_rank")
        later = [n for n in names[at + 1 :] if n not in TRAINING or n == "lora"]
        if later:
            raise ConfigError(
                f"The 'student.transforms[{at}].name' parameter is 'low_rank', which must come after every other "
                f"transform (they cut dense weights; lora adapts them). Got {', '.join(later)} after it."
            )
    for i, (name, _) in enumerate(steps[:-1]):
        if name in TRAINING:
            raise ConfigError(
                f"The 'student.transforms[{i}].name' parameter is {name!r}, which must be the last transform "
                f"(after the shape transforms, whose student it adapts). Got it at position {i} of {len(steps)}."
            )
    return steps


def _check_supported(config: Any, steps: list[tuple[str, Any]]) -> None:
    supported = supported_transforms(config)
    if not supported:
        kinds = "; ".join(f"{arch}: {', '.join(names)}" for arch, names in SUPPORTED.items())
        raise TeacherError(
            f"A causal-LM teacher of architecture {getattr(config, 'model_type', None)!r} cannot be cut into a "
            f"student. Supported architectures and their transforms: {kinds}."
        )
    for i, (name, _) in enumerate(steps):
        if name not in supported + TRAINING:
            raise ConfigError(
                f"The 'student.transforms[{i}].name' parameter is {name!r}, which a {config.model_type} teacher "
                f"does not support; it supports: {', '.join(supported + TRAINING)}."
            )


def _start_config(teacher_config: Any) -> Any:
    config = copy.deepcopy(teacher_config)
    config.dtype = torch.float32  # the student's weights are float32 whatever the teacher's
    if hasattr(config, "quantization_config"):  # e.g. a GGUF teacher's: the student's weights are plain
        del config.quantization_config
    return config


def _planned(teacher_config: Any, steps: list[tuple[str, Any]]) -> list[Any]:
    """The config before every step and after the last one."""
    _check_supported(teacher_config, steps)
    configs = [_start_config(teacher_config)]
    for i, (name, options) in enumerate(steps):
        try:
            configs.append(LM_TRANSFORMS.get(name)().plan(configs[-1], options))
        except Invalid as err:
            raise ConfigError(f"The 'student.transforms[{i}].{err.key}' parameter ({name}) {err.message}") from None
    return configs


def plan_config(teacher_config: Any, transforms: list[dict]) -> Any:
    """The student's config, with no weights (for ``depth`` by importance, its per-layer attention
    types, where layers differ, are those of evenly spaced layers)."""
    return _planned(teacher_config, parse_steps(transforms))[-1]


def untrained_model(teacher_config: Any, transforms: list[dict]) -> torch.nn.Module:
    """A model of the planned shape with random weights, in eval mode (for timing)."""
    return AutoModelForCausalLM.from_config(plan_config(teacher_config, transforms)).float().eval()


def predict_parameters(teacher_config: Any, transforms: list[dict]) -> int:
    """The student's exact parameter count (tied embeddings counted once), without any weights."""
    with torch.device("meta"):  # shapes only: transformers counts the parameters it would build
        model = AutoModelForCausalLM.from_config(plan_config(teacher_config, transforms))
    return sum(p.numel() for p in model.parameters())


def _teacher_state(teacher: Any) -> State:
    # float32 CPU copies: the edits slice them and the student must never share storage with the teacher
    state = {k: v.detach().to("cpu", copy=True) for k, v in teacher.state_dict().items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _model(cls: type, config: Any, state: State) -> torch.nn.Module:
    # random initialisation takes seconds for a 100M-parameter model on CPU and load_state_dict
    # overwrites every weight, so it is skipped; skipping it also skips the tying, redone here
    with no_init_weights():
        model = cls(config)
    model.tie_weights()
    model.load_state_dict(state, strict=True)
    return model.float()


def _check_data(steps: list[tuple[str, Any]], configs: list[Any], calibration: torch.Tensor | None) -> None:
    for i, (name, options) in enumerate(steps):
        if LM_TRANSFORMS.get(name)().needs_data(configs[i], options):
            if calibration is None:
                what = "'choice: importance'" if name == "depth" else "its importance scores"
                raise ConfigError(
                    f"The 'student.transforms[{i}]' transform ({name}) needs calibration tokens for {what}, "
                    "but none were given. Pass a few tokenized training rows, or keep everything it would cut."
                )
            imp.check_calibration(calibration)


def _check_step(i: int, name: str, planned: Any, actual: Any) -> None:
    keys = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")
    if any(getattr(planned, k, None) != getattr(actual, k, None) for k in keys):
        raise _misfit(f"student.transforms[{i}] ({name}) gives another shape than its options plan")


def _wrapped(model: torch.nn.Module, steps: list[tuple[str, Any]], records: list[dict]) -> Any:
    for (name, _), rec in zip(steps, records):
        model = LM_TRANSFORMS.get(name)().wrap(model, rec["resolved"])
    return model


def build_student(
    teacher: Any, transforms: list[dict], calibration: torch.Tensor | None
) -> tuple[torch.nn.Module, list[dict]]:
    """The student cut from ``teacher`` (float32, CPU, train mode; a peft model with a ``lora`` step,
    :func:`shipped_model` gives its plain form) and its records, JSON-able dicts
    ``{name, options, resolved}`` that ``rebuild_student`` rebuilds it from. ``calibration``: input
    ids [n, L], used only where a transform scores importance."""
    steps = parse_steps(transforms)
    configs = _planned(teacher.config, steps)
    _check_data(steps, configs, calibration)
    state, config, model, records = _teacher_state(teacher), _start_config(teacher.config), teacher, []
    device = next(teacher.parameters()).device
    for i, ((name, options), raw) in enumerate(zip(steps, transforms)):
        transform = LM_TRANSFORMS.get(name)()
        planned = transform.plan(config, options)
        if transform.needs_data(config, options) and model is None:
            model = _model(model_class(config, type(teacher)), config, state).to(device)
        resolved = transform.resolve(model, config, options, calibration)
        state, config = transform.apply(state, config, resolved)
        _check_step(i, name, planned, config)
        model = None  # the next step scores the model as cut so far
        options_raw = {k: v for k, v in raw.items() if k != "name"}
        records.append({"name": name, "options": options_raw, "resolved": resolved})
    return _wrapped(_model(model_class(config, type(teacher)), config, state), steps, records).train(), records


def rebuild_student(teacher: Any, records: list[dict]) -> torch.nn.Module:
    """The student ``build_student`` gave, with the same weights, from its records and the teacher alone."""
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not {"name", "options", "resolved"} <= set(rec):
            raise _misfit(f"record {i} lacks one of name, options, resolved")
    steps = parse_steps([{"name": r["name"], **r["options"]} for r in records])
    _planned(teacher.config, steps)
    state, config = _teacher_state(teacher), _start_config(teacher.config)
    for i, ((name, options), rec) in enumerate(zip(steps, records)):
        transform = LM_TRANSFORMS.get(name)()
        planned = transform.plan(config, options)
        state, config = transform.apply(state, config, rec["resolved"])
        _check_step(i, name, planned, config)
    return _wrapped(_model(model_class(config, type(teacher)), config, state), steps, records).train()


from autodistill.tasks.causal_lm import low_rank as _low_rank  # noqa: E402, F401  (registers 'low_rank')
