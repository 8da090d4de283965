"""Shapes <-> configs and models, and the registered architecture for students no stock config describes.

A student whose layers all share one heads/head_dim/ffn, with ``heads * head_dim == hidden`` and no
factors, is saved as a stock ``BertForSequenceClassification`` and loads without autodistill. Any
other shape (fewer heads at an unchanged hidden size, per-layer widths, low-rank factors) uses
``AutodistillBertForSequenceClassification``: the transformers Bert classes with modules resized per
layer, registered with the Auto classes so that ``from_pretrained`` works after ``import autodistill``.
At inference (eval mode, logits only) its last layer computes only the first position, the one the
pooler reads: the same logits for less work (``config.first_token_last_layer``); hidden states,
attentions, training and ``every_position`` get every position.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedModel,
)
from transformers.activations import ACT2FN
from transformers.models.bert import modeling_bert as mb

from autodistill.student.shape import LayerShape, ModelShape

# Settings copied from the teacher's config to the student's: everything that is not a size.
_SIZE_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "num_labels",
    "id2label",
    "label2id",
    "layer_heads",
    "head_dim",
    "layer_ffn",
    "layer_ranks",
    "embedding_rank",
    "model_type",
    "architectures",
    "auto_map",
    "transformers_version",
    "dtype",
    "torch_dtype",
    "_name_or_path",
)


@strict
class AutodistillBertConfig(BertConfig):
    """A BertConfig with per-layer heads, FFN widths and low-rank factors (see ``ModelShape``)."""

    model_type = "autodistill_bert"

    layer_heads: list[int] | None = None  # heads per layer; None: num_attention_heads everywhere
    head_dim: int | None = None  # None: hidden_size // num_attention_heads
    layer_ffn: list[int] | None = None  # intermediate size per layer; None: intermediate_size
    layer_ranks: list[dict[str, int]] | None = None  # per layer: short Linear name -> rank
    embedding_rank: int | None = None  # ALBERT-style word embedding factors
    # inference only: the last layer computes the first ([CLS]) position alone, the only one the
    # pooler reads (exact; see AutodistillBertForSequenceClassification.forward)
    first_token_last_layer: bool = True

    def layer_shapes(self) -> list[LayerShape]:
        n = self.num_hidden_layers
        heads = self.layer_heads or [self.num_attention_heads] * n
        head_dim = self.head_dim or self.hidden_size // self.num_attention_heads
        ffn = self.layer_ffn or [self.intermediate_size] * n
        ranks = self.layer_ranks or [{} for _ in range(n)]
        return [LayerShape(heads[i], head_dim, ffn[i], dict(ranks[i])) for i in range(n)]


def shape_from_config(config: Any) -> ModelShape:
    """The ModelShape of a BERT-family sequence classifier config (stock or autodistill_bert)."""
    if isinstance(config, AutodistillBertConfig):
        layers = config.layer_shapes()
        embedding_rank = config.embedding_rank
    elif isinstance(config, BertConfig):
        head_dim = config.hidden_size // config.num_attention_heads
        layer = LayerShape(config.num_attention_heads, head_dim, config.intermediate_size)
        layers = [layer] * config.num_hidden_layers
        embedding_rank = None
    else:
        raise TypeError(
            f"autodistill students support BERT-family teachers for now; got a {type(config).__name__} "
            f"(model_type {getattr(config, 'model_type', '?')!r})."
        )
    return ModelShape(
        family="bert",
        vocab=config.vocab_size,
        hidden=config.hidden_size,
        max_positions=config.max_position_embeddings,
        type_vocab=config.type_vocab_size,
        num_labels=config.num_labels,
        layers=tuple(layers),
        embedding_rank=embedding_rank,
    )


def is_stock(shape: ModelShape) -> bool:
    """Can a stock BertConfig describe this shape exactly?"""
    return (
        shape.is_uniform()
        and shape.layers[0].attn_dim == shape.hidden
        and shape.embedding_rank is None
        and shape.pooler
    )


def config_for_shape(
    shape: ModelShape,
    base_config: Any,
    id2label: dict[int, str] | None = None,
    label2id: dict[str, int] | None = None,
) -> BertConfig:
    """A stock BertConfig when one describes the shape, else an AutodistillBertConfig; every other
    setting (activation, dropout, LayerNorm eps, pad id, ...) comes from ``base_config``."""
    if shape.family != "bert":
        raise ValueError(f"Unsupported model family {shape.family!r}; supported: 'bert'.")
    if not shape.pooler:
        raise ValueError("BERT sequence classifiers need their pooler; a shape without one cannot be built.")
    base = base_config.to_dict() if hasattr(base_config, "to_dict") else dict(base_config)
    common = {k: v for k, v in base.items() if k not in _SIZE_KEYS and k in BertConfig.__dataclass_fields__}
    if id2label is None:
        id2label = dict(getattr(base_config, "id2label", None) or {i: f"LABEL_{i}" for i in range(shape.num_labels)})
    if label2id is None:
        label2id = {v: k for k, v in id2label.items()}
    first = shape.layers[0]
    sizes = dict(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.num_layers,
        max_position_embeddings=shape.max_positions,
        type_vocab_size=shape.type_vocab,
        id2label={int(k): v for k, v in id2label.items()},
        label2id={k: int(v) for k, v in label2id.items()},
    )
    if is_stock(shape):
        return BertConfig(**common, **sizes, num_attention_heads=first.heads, intermediate_size=first.ffn)
    return AutodistillBertConfig(
        **common,
        **sizes,
        # num_attention_heads must divide hidden_size for BertConfig's own checks; the per-layer
        # fields below are what the registered model reads.
        num_attention_heads=1,
        intermediate_size=max(layer.ffn for layer in shape.layers),
        layer_heads=[layer.heads for layer in shape.layers],
        head_dim=_one_head_dim(shape),
        layer_ffn=[layer.ffn for layer in shape.layers],
        layer_ranks=[dict(layer.ranks) for layer in shape.layers],
        embedding_rank=shape.embedding_rank,
        architectures=["AutodistillBertForSequenceClassification"],
    )


def _one_head_dim(shape: ModelShape) -> int:
    dims = {layer.head_dim for layer in shape.layers}
    if len(dims) != 1:
        raise ValueError(f"All layers must share one head_dim; got {sorted(dims)}.")
    return dims.pop()


def build_model(
    shape: ModelShape,
    base_config: Any,
    state: dict[str, torch.Tensor] | None = None,
    id2label: dict[int, str] | None = None,
    label2id: dict[str, int] | None = None,
) -> PreTrainedModel:
    """The model for ``shape`` (stock or registered), loaded strictly from ``state`` when given."""
    config = config_for_shape(shape, base_config, id2label, label2id)
    config._attn_implementation = getattr(base_config, "_attn_implementation", None) or "eager"
    cls = (
        BertForSequenceClassification
        if isinstance(config, BertConfig) and not isinstance(config, AutodistillBertConfig)
        else AutodistillBertForSequenceClassification
    )
    model = cls(config)
    if state is not None:
        model.load_state_dict(state, strict=True)
    count = sum(p.numel() for p in model.parameters())
    if count != shape.num_parameters():  # the shape's count is the contract the search prices with
        raise AssertionError(f"Built {count} parameters for a shape that predicts {shape.num_parameters()}.")
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Modules of the registered architecture. Each reuses the forward of its transformers parent and
# only builds differently sized parts.


class LowRankLinear(nn.Module):
    """``x -> up(down(x))``: a Linear replaced by two factors, ``in -> rank`` (no bias), ``rank -> out``."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class FactoredEmbedding(nn.Module):
    """ALBERT-style word embedding: ``vocab x rank`` rows, then ``rank -> hidden`` (no bias)."""

    def __init__(self, vocab: int, rank: int, hidden: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, rank, padding_idx=padding_idx)
        self.proj = nn.Linear(rank, hidden, bias=False)

    @property
    def weight(self) -> torch.Tensor:  # the full table, for code that reads ``.weight``
        return self.proj(self.embed.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(ids))


def linear(fan_in: int, fan_out: int, rank: int | None = None) -> nn.Module:
    return nn.Linear(fan_in, fan_out) if rank is None else LowRankLinear(fan_in, fan_out, rank)


class _SelfAttention(mb.BertSelfAttention):
    def __init__(self, config: AutodistillBertConfig, shape: LayerShape, layer_idx: int) -> None:
        nn.Module.__init__(self)
        hidden = config.hidden_size
        self.config = config
        self.num_attention_heads = shape.heads
        self.attention_head_size = shape.head_dim
        self.all_head_size = shape.attn_dim
        self.scaling = shape.head_dim**-0.5
        self.query = linear(hidden, shape.attn_dim, shape.ranks.get("query"))
        self.key = linear(hidden, shape.attn_dim, shape.ranks.get("key"))
        self.value = linear(hidden, shape.attn_dim, shape.ranks.get("value"))
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.is_decoder = False
        self.is_causal = False
        self.layer_idx = layer_idx

    def first_position(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The attention context of the first position alone, ``[B, 1, attn_dim]``: its query
        against every position's key and value (the inference path of the last layer)."""
        b, n, _ = hidden_states.shape
        split = (-1, self.attention_head_size)
        query = self.query(hidden_states[:, :1]).view(b, 1, *split).transpose(1, 2)
        key = self.key(hidden_states).view(b, n, *split).transpose(1, 2)
        value = self.value(hidden_states).view(b, n, *split).transpose(1, 2)
        if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
            attention_mask = attention_mask[:, :, :1]
        attend = mb.ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, mb.eager_attention_forward)
        context, _ = attend(self, query, key, value, attention_mask, dropout=0.0, scaling=self.scaling)
        return context.reshape(b, 1, -1).contiguous()


class _SelfOutput(mb.BertSelfOutput):
    def __init__(self, config: AutodistillBertConfig, shape: LayerShape) -> None:
        nn.Module.__init__(self)
        self.dense = linear(shape.attn_dim, config.hidden_size, shape.ranks.get("attn_out"))
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class _Attention(mb.BertAttention):
    def __init__(self, config: AutodistillBertConfig, shape: LayerShape, layer_idx: int) -> None:
        nn.Module.__init__(self)
        self.is_cross_attention = False
        self.self = _SelfAttention(config, shape, layer_idx)
        self.output = _SelfOutput(config, shape)


class _Intermediate(mb.BertIntermediate):
    def __init__(self, config: AutodistillBertConfig, shape: LayerShape) -> None:
        nn.Module.__init__(self)
        self.dense = linear(config.hidden_size, shape.ffn, shape.ranks.get("ffn_in"))
        act = config.hidden_act
        self.intermediate_act_fn = ACT2FN[act] if isinstance(act, str) else act


class _Output(mb.BertOutput):
    def __init__(self, config: AutodistillBertConfig, shape: LayerShape) -> None:
        nn.Module.__init__(self)
        self.dense = linear(shape.ffn, config.hidden_size, shape.ranks.get("ffn_out"))
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class _Layer(mb.BertLayer):
    def __init__(self, config: AutodistillBertConfig, shape: LayerShape, layer_idx: int) -> None:
        nn.Module.__init__(self)
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.seq_len_dim = 1
        self.attention = _Attention(config, shape, layer_idx)
        self.is_decoder = False
        self.add_cross_attention = False
        self.intermediate = _Intermediate(config, shape)
        self.output = _Output(config, shape)

    def first_position(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The layer's output at the first position alone, ``[B, 1, hidden]``."""
        context = self.attention.self.first_position(hidden_states, attention_mask)
        return self.feed_forward_chunk(self.attention.output(context, hidden_states[:, :1]))


class _Encoder(mb.BertEncoder):
    def __init__(self, config: AutodistillBertConfig) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.layer = nn.ModuleList([_Layer(config, s, i) for i, s in enumerate(config.layer_shapes())])

    def forward(self, hidden_states: torch.Tensor, *args: Any, first_token_only: bool = False, **kwargs: Any) -> Any:
        """The stock encoder, or (``first_token_only``, passed down by the classifier's forward for
        that call alone, so concurrent calls do not share it) the last layer at the first position."""
        if not first_token_only:
            return super().forward(hidden_states, *args, **kwargs)
        mask = args[0] if args else kwargs.get("attention_mask")
        passed = {k: v for k, v in kwargs.items() if k not in _ENCODER_ONLY_KEYS}
        for layer in self.layer[:-1]:
            hidden_states = layer(hidden_states, mask, **passed)
        return mb.BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=self.layer[-1].first_position(hidden_states, mask)
        )


# what the stock encoder takes for itself (cross-attention and caches, unused by an encoder-only
# classifier); everything else goes on to each layer as the stock encoder passes it
_ENCODER_ONLY_KEYS = ("attention_mask", "encoder_hidden_states", "encoder_attention_mask", "cache", "use_cache")


class _Embeddings(mb.BertEmbeddings):
    def __init__(self, config: AutodistillBertConfig) -> None:
        super().__init__(config)
        if config.embedding_rank is not None:
            self.word_embeddings = FactoredEmbedding(
                config.vocab_size, config.embedding_rank, config.hidden_size, config.pad_token_id
            )


class AutodistillBertModel(mb.BertModel):
    config_class = AutodistillBertConfig
    _no_split_modules = ["_Embeddings", "_Layer"]

    def __init__(self, config: AutodistillBertConfig, add_pooling_layer: bool = True) -> None:
        mb.BertPreTrainedModel.__init__(self, config)
        self.config = config
        self.gradient_checkpointing = False
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        self.pooler = mb.BertPooler(config) if add_pooling_layer else None
        self.post_init()


class AutodistillBertForSequenceClassification(BertForSequenceClassification):
    config_class = AutodistillBertConfig

    def __init__(self, config: AutodistillBertConfig) -> None:
        mb.BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.config = config
        self.bert = AutodistillBertModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The stock forward; at inference (eval mode, no hidden states or attentions asked for)
        the last layer computes only the first position, which is all the pooler reads: the same
        logits, 10-20% less batch-1 time for a thin 3-layer student (``benchmarks/form_latency.py``;
        ``config.first_token_last_layer: false`` turns it off)."""

        def asked(key: str) -> bool:
            value = kwargs.get(key)
            return bool(getattr(self.config, key, False) if value is None else value)

        if (
            self.config.first_token_last_layer
            and not self.training
            and not asked("output_hidden_states")
            and not asked("output_attentions")
        ):
            kwargs["first_token_only"] = True
        return super().forward(*args, **kwargs)


@contextlib.contextmanager
def every_position(model: nn.Module) -> Iterator[None]:
    """Within the block, a registered student computes every position of its last layer at
    inference too (for passes that read the last layer's activations through hooks)."""
    config = getattr(model, "config", None)
    saved = getattr(config, "first_token_last_layer", None)
    if saved is None:
        yield
        return
    config.first_token_last_layer = False
    try:
        yield
    finally:
        config.first_token_last_layer = saved


def register_auto_classes() -> None:
    """Make ``Auto*.from_pretrained`` load autodistill_bert folders (idempotent)."""
    AutoConfig.register(AutodistillBertConfig.model_type, AutodistillBertConfig, exist_ok=True)
    AutoModel.register(AutodistillBertConfig, AutodistillBertModel, exist_ok=True)
    AutoModelForSequenceClassification.register(
        AutodistillBertConfig, AutodistillBertForSequenceClassification, exist_ok=True
    )


register_auto_classes()
