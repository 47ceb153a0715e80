"""The mini-Pythia suites: architectures, the shared training recipe, cache keys, eval data.

A :class:`Suite` is a :class:`Recipe` (corpus, tokenizer, data, optimiser, checkpoint schedule,
evaluation sequences, seeds) shared by every model, plus the :class:`ModelSpec` of each model.
The two suites, ``smoke`` (tests, < 1 minute) and ``default`` (the released dataset), are
defined here and only here: :data:`SUITES`.

Models are ``transformers`` GPT-NeoX models built like Pythia (Biderman et al. 2023; the Pythia table of the reference file): rotary on a
quarter of each head, parallel attention + MLP residual, untied embeddings, LayerNorm, GELU,
no dropout, d_ff = 4 d, and Pythia's initialisation (``small_init`` for embeddings and input
projections, ``wang_init`` for the output projections of attention and MLP).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from massive_activations.schedule import scaled_schedule

__all__ = [
    "SUITES",
    "ModelSpec",
    "Recipe",
    "Suite",
    "config_hash",
    "eval_sequences",
    "get_suite",
    "init_pythia_weights",
    "make_model",
    "model_config",
    "run_name",
    "suite_dir",
]

#: Bumped whenever training changes in a way the configuration does not capture.
TRAIN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """One model of a suite.

    Attributes
    ----------
    name : str
        Model name in the tables (a folder name), e.g. ``"L6-d256-h8"``.
    n_layers, d_model, n_heads : int
        Depth, width and attention heads (``d_model`` divisible by ``n_heads``).
    steps : int
        Optimiser steps (the last checkpoint).
    seed : int, default 0
        Seed replicate: added to the recipe's ``init_seed`` and ``data_seed``, so replicate
        ``s > 0`` of an architecture starts from other weights and sees the training
        sequences in another order (:meth:`Suite.recipe_for`).
    packing : bool, default False
        Train as Pythia does: consecutive windows of the token stream with nothing forced in
        front (overrides the recipe's ``prepend_eot``).
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    steps: int
    seed: int = 0
    packing: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"Model {self.name!r}: d_model={self.d_model} is not divisible by "
                f"n_heads={self.n_heads}; pick a head count that divides the width."
            )
        if (self.d_model // self.n_heads) % 4:
            raise ValueError(
                f"Model {self.name!r}: the head size {self.d_model // self.n_heads} must be a "
                "multiple of 4 (rotary on a quarter of each head, in pairs)."
            )
        if min(self.n_layers, self.d_model, self.n_heads, self.steps) < 1:
            raise ValueError(f"Model {self.name!r}: every size must be >= 1; got {self}.")

    @property
    def d_ff(self) -> int:
        """MLP width, 4 x ``d_model`` as in Pythia."""
        return 4 * self.d_model

    @property
    def architecture(self) -> str:
        """``L<layers>-d<width>-h<heads>``: the same for every seed replicate and variant."""
        return f"L{self.n_layers}-d{self.d_model}-h{self.n_heads}"


@dataclass(frozen=True)
class Recipe:
    """What every model of a suite shares: data, optimiser, schedule, evaluation, seeds.

    Attributes
    ----------
    corpus : {"small", "large"}
        See :func:`massive_activations.suite.corpus.load_corpus`.
    vocab_size : int
        BPE vocabulary size.
    heldout_fraction, split_seed
        The fixed held-out split (:func:`massive_activations.suite.tokenizer.split_documents`).
    seq_len, batch_size : int
        Tokens per training sequence (the :data:`~massive_activations.suite.tokenizer.EOT` included
        when ``prepend_eot``) and sequences per step.
    prepend_eot : bool
        Start every training sequence with EOT, a fixed first token as a BOS token provides
        (a model with ``packing`` overrides it).  The evaluation sequences come in both
        variants whatever the training format (:func:`eval_sequences`).
    lr, min_lr_ratio, warmup_fraction : float
        Peak learning rate; linear warm-up over ``warmup_fraction`` of the steps, then cosine
        decay to ``min_lr_ratio * lr`` at the last step (Pythia: 1 % warm-up, 0.1).
    weight_decay, beta1, beta2, eps, grad_clip : float
        AdamW (decoupled weight decay on weight matrices and embeddings, none on biases and
        LayerNorms) and the gradient-norm clip (Pythia: 0.1, 0.9, 0.95, 1e-8, 1.0).
    bf16 : bool
        Forward and backward under ``torch.autocast(dtype=bfloat16)``; weights, optimiser
        state and checkpoints stay float32.
    n_linear : int
        Evenly spaced checkpoints after the powers of two
        (:func:`massive_activations.schedule.scaled_schedule`).
    n_eval_sequences, eval_seq_len, eval_documents, eval_seed
        Evaluation sequences (:func:`eval_sequences`).
    attention_sink : bool
        Also measure the attention on position 0 (``attn_first_pos``).
    val_sequences : int
        Held-out sequences for the validation loss at each checkpoint.
    data_seed, init_seed : int
        Order of the training sequences (the same for every model) and weight initialisation.
    init : {"normal", "pythia"}
        transformers' default N(0, 0.02) (as in the trials that found the first-token
        activation forming on this machine), or Pythia's ``small_init``/``wang_init``.
    """

    corpus: str
    vocab_size: int
    seq_len: int
    batch_size: int
    lr: float
    n_linear: int
    heldout_fraction: float = 0.05
    split_seed: int = 0
    prepend_eot: bool = True
    min_lr_ratio: float = 0.1
    warmup_fraction: float = 0.01
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    bf16: bool = False
    n_eval_sequences: int = 10
    eval_seq_len: int | None = None
    eval_documents: int = 500
    eval_seed: int = 1
    attention_sink: bool = True
    val_sequences: int = 32
    data_seed: int = 0
    init_seed: int = 0
    init: str = "normal"

    def __post_init__(self) -> None:
        if self.corpus not in ("small", "large"):
            raise ValueError(f"corpus must be 'small' or 'large'; got {self.corpus!r}.")
        if self.init not in ("pythia", "normal"):
            raise ValueError(f"init must be 'pythia' or 'normal'; got {self.init!r}.")
        if self.seq_len < 2 or self.batch_size < 1:
            raise ValueError(
                f"seq_len must be >= 2 and batch_size >= 1; got {self.seq_len}, {self.batch_size}."
            )

    @property
    def eval_len(self) -> int:
        """Length of the evaluation sequences (default: ``seq_len``)."""
        return self.eval_seq_len or self.seq_len

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimiser step."""
        return self.seq_len * self.batch_size


@dataclass(frozen=True)
class Suite:
    """A named suite: the shared :class:`Recipe` and the models."""

    name: str
    recipe: Recipe
    models: tuple[ModelSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"Suite {self.name!r} lists a model name twice: {names}.")

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"Suite {self.name!r} has no model {name!r}; it has {self.names}.")

    @property
    def names(self) -> list[str]:
        """Model names in order."""
        return [m.name for m in self.models]

    def recipe_for(self, model: ModelSpec) -> Recipe:
        """The recipe ``model`` trains with: seeds offset by its replicate, its packing."""
        recipe = self.recipe
        return replace(
            recipe,
            init_seed=recipe.init_seed + model.seed,
            data_seed=recipe.data_seed + model.seed,
            prepend_eot=recipe.prepend_eot and not model.packing,
        )

    def schedule(self, model: ModelSpec) -> list[int]:
        """Checkpoint steps of ``model``: 0, powers of two, then evenly spaced to the end."""
        return scaled_schedule(model.steps, self.recipe.n_linear)

    def to_dict(self) -> dict:
        """A JSON-ready description (the manifest's ``suite`` entry)."""
        return {
            "name": self.name,
            "recipe": asdict(self.recipe),
            "models": [asdict(m) for m in self.models],
        }


def _spec(
    n_layers: int, d_model: int, n_heads: int, steps: int, seed: int = 0, packing: bool = False
) -> ModelSpec:
    """A model named by its architecture, ``-s<seed>`` for replicates, ``-packed`` for packing."""
    name = f"L{n_layers}-d{d_model}-h{n_heads}"
    name += f"-s{seed}" if seed else ""
    name += "-packed" if packing else ""
    return ModelSpec(name, n_layers, d_model, n_heads, steps, seed, packing)


#: Tiny models on the small corpus, for the tests (well under a minute end to end).
SMOKE = Suite(
    "smoke",
    Recipe(
        corpus="small",
        vocab_size=320,
        seq_len=32,
        batch_size=4,
        lr=3e-3,
        n_linear=3,
        heldout_fraction=0.1,
        n_eval_sequences=3,
        eval_documents=4,
        val_sequences=8,
    ),
    (
        _spec(2, 32, 2, 24),
        _spec(3, 48, 4, 24),
        _spec(2, 32, 2, 24, seed=1),
        _spec(2, 32, 2, 24, packing=True),
    ),
)

#: The released suite: the large corpus, bf16 autocast, EOT first in every training sequence,
#: LR 3e-3, 2,048 tokens per step.  Depth, width and heads each take three values around the
#: reference L4-d128-h4, the others held fixed; these seven models see the same 16.4 M tokens
#: in the same order.  The reference, the shallowest (L2) and the narrowest (d64)
#: architecture have two more seed replicates each (other initial weights and data order; the
#: deepest and widest would cost twice as much CPU time), and the reference is trained once
#: more with Pythia's packing (no EOT forced in front of a training window).
DEFAULT = Suite(
    "default",
    Recipe(
        corpus="large",
        vocab_size=4096,
        seq_len=256,
        batch_size=8,
        lr=3e-3,
        n_linear=32,
        bf16=True,
        val_sequences=32,
    ),
    (
        *(
            _spec(n_layers, d_model, n_heads, 8000)
            for n_layers, d_model, n_heads in (
                (2, 128, 4),
                (4, 128, 4),
                (8, 128, 4),
                (4, 64, 4),
                (4, 256, 4),
                (4, 128, 2),
                (4, 128, 8),
            )
        ),
        *(
            _spec(n_layers, d_model, 4, 8000, seed=seed)
            for n_layers, d_model in ((4, 128), (2, 128), (4, 64))
            for seed in (1, 2)
        ),
        _spec(4, 128, 4, 8000, packing=True),
    ),
)

#: Every suite, by name.
SUITES: dict[str, Suite] = {s.name: s for s in (SMOKE, DEFAULT)}


def get_suite(name: str) -> Suite:
    """The suite called ``name`` (see :data:`SUITES`)."""
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"Unknown suite {name!r}; choose one of {sorted(SUITES)}.") from None


# --------------------------------------------------------------------------- models


def model_config(spec: ModelSpec, recipe: Recipe, vocab_size: int, eot_id: int):
    """The :class:`transformers.GPTNeoXConfig` of ``spec``, Pythia's choices scaled down."""
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=spec.d_model,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        intermediate_size=spec.d_ff,
        hidden_act="gelu",
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000,
            "partial_rotary_factor": 0.25,
        },
        attention_dropout=0.0,
        hidden_dropout=0.0,
        max_position_embeddings=max(recipe.seq_len, recipe.eval_len),
        initializer_range=0.02,
        layer_norm_eps=1e-5,
        use_cache=True,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        tie_word_embeddings=False,
        use_parallel_residual=True,
        attention_bias=True,
    )


@torch.no_grad()
def init_pythia_weights(model, seed: int) -> None:
    """Pythia's initialisation, drawn from a generator seeded with ``seed``.

    ``small_init`` N(0, sqrt(2 / (5 d))) for the embeddings, the fused QKV projection, the MLP
    input and the output head; ``wang_init`` N(0, 2 / (L sqrt(d))) for the attention output and
    MLP output projections; zero biases, unit LayerNorms.
    """
    cfg = model.config
    d, n_layers = cfg.hidden_size, cfg.num_hidden_layers
    small = (2 / (5 * d)) ** 0.5
    wang = 2 / (n_layers * d**0.5)
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.zero_()
        elif "layernorm" in name or "layer_norm" in name or name.endswith("norm.weight"):
            p.fill_(1.0)
        else:
            std = (
                wang if name.endswith(("attention.dense.weight", "dense_4h_to_h.weight")) else small
            )
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def make_model(spec: ModelSpec, recipe: Recipe, vocab_size: int, eot_id: int):
    """A freshly initialised ``GPTNeoXForCausalLM`` (float32, on the CPU) for ``spec``."""
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(recipe.init_seed)
    model = GPTNeoXForCausalLM(model_config(spec, recipe, vocab_size, eot_id))
    if recipe.init == "pythia":
        init_pythia_weights(model, recipe.init_seed)
    return model


def config_hash(spec: ModelSpec, recipe: Recipe, tokens_key: str, device: str = "cpu") -> str:
    """Cache key of one training run: a hash of everything that determines its checkpoints.

    Parameters
    ----------
    spec, recipe
        The model and the suite's recipe.
    tokens_key : str
        :attr:`massive_activations.suite.tokenizer.TokenData.key` (corpus, split and tokenizer).
    device : str
        The device type trained on (``"cpu"``, ``"cuda"``): numbers differ between them.

    Returns
    -------
    str
        12 hexadecimal digits; equal configurations give equal keys.
    """
    blob = json.dumps(
        {
            "model": asdict(spec),
            "recipe": asdict(recipe),
            "tokens": tokens_key,
            "device": torch.device(device).type,
            "version": TRAIN_FORMAT_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_name(spec: ModelSpec, key: str) -> str:
    """Folder name of a run in the checkpoint cache: ``<model>-<key>``."""
    return f"{spec.name}-{key}"


# --------------------------------------------------------------------------- evaluation data


def eval_sequences(documents, tokenizer, recipe: Recipe, eot_id: int) -> dict[str, torch.Tensor]:
    """Evaluation sequences drawn as Sun et al. did, in both variants.

    ``recipe.eval_documents`` random held-out documents (numpy generator seeded with
    ``recipe.eval_seed``) are joined with blank lines, tokenized without special tokens and
    cut into consecutive windows; the first ``recipe.n_eval_sequences`` are kept.

    * ``"raw"`` (the paper's way): windows of ``eval_len`` tokens of the text itself, so the
      first token of each is whatever the text holds there;
    * ``"eot_first"``: windows of ``eval_len - 1`` tokens with EOT in front, a fixed first
      token (the format of the training sequences with ``prepend_eot``).

    Parameters
    ----------
    documents : sequence of Document
        The held-out documents.
    tokenizer : tokenizers.Tokenizer
        The suite's tokenizer.
    recipe : Recipe
        Number, length and seed of the sequences.
    eot_id : int
        Id of EOT.

    Returns
    -------
    dict of str to torch.LongTensor
        ``{"raw": ..., "eot_first": ...}``, each of shape ``(n_eval_sequences, eval_len)``.
    """
    from massive_activations.measurement.extract import token_windows, tokenize_text
    from massive_activations.suite.tokenizer import hf_tokenizer

    rng = np.random.default_rng(recipe.eval_seed)
    n = min(recipe.eval_documents, len(documents))
    chosen = rng.choice(len(documents), size=n, replace=False)
    text = "\n\n".join(documents[i].text for i in chosen)
    ids = tokenize_text(text, hf_tokenizer(tokenizer))
    body = token_windows(ids, recipe.n_eval_sequences, recipe.eval_len - 1)
    first = torch.full((body.shape[0], 1), int(eot_id), dtype=torch.long)
    return {
        "raw": token_windows(ids, recipe.n_eval_sequences, recipe.eval_len),
        "eot_first": torch.cat([first, body], dim=1),
    }


def suite_dir(cache: Path, suite: Suite) -> Path:
    """``<cache>/suites/<suite>``: one link per model to its run folder (for extraction)."""
    return Path(cache) / "suites" / suite.name
