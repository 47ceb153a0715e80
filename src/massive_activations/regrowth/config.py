"""The regrowth experiment's settings in one place: a dataclass, its named configurations and
the log-spaced measurement schedule.

:class:`RegrowthConfig` holds everything that determines the runs' numbers (model, text,
training, ablation, schedule, seeds); :meth:`RegrowthConfig.key` hashes it, and the runs'
cache folders (``<cache>/regrowth/<run>-<key>/``) are named after it, so a changed setting
never resumes a run made with another.  :data:`CONFIGS` names the two configurations the book
uses: ``"default"`` (SmolLM2-135M-Instruct on the Debian-docs corpus, about 40 minutes per
run on two CPU cores) and ``"smoke"`` (a tiny random Llama with a planted outlier writer, seconds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ABLATIONS",
    "CONFIGS",
    "FORMAT_VERSION",
    "MODELS",
    "RUNS",
    "RegrowthConfig",
    "folder_name",
    "get_config",
    "log_schedule",
]

#: Bumped whenever the training loop or the measurement changes, so that caches are rebuilt.
FORMAT_VERSION = 1

#: Base models: SmolLM2-135M-Instruct (GGUF, dequantised), or a tiny random Llama with a
#: planted outlier writer (:mod:`massive_activations.regrowth.models`).
MODELS = ("smollm2", "tiny-llama")

#: Ablations of the writer (:mod:`massive_activations.regrowth.ablate`).
ABLATIONS = ("zero_row", "reinit")

#: The two runs of the experiment: the control (no ablation) and the ablated model.
RUNS = ("control", "ablated")


def log_schedule(steps: int, n_points: int) -> list[int]:
    """Measurement steps: 0, then integers spaced evenly in log(step) up to ``steps``.

    Parameters
    ----------
    steps : int
        The last training step (always measured).
    n_points : int
        How many measurements at least, step 0 included (>= 2, <= ``steps + 1``).  Rounding
        to integers merges neighbours at the start, so more log-spaced points are drawn
        until at least ``n_points`` distinct steps remain.

    Returns
    -------
    list of int
        Sorted, distinct steps starting with 0 and ending with ``steps``.
    """
    if n_points < 2 or steps < 1 or n_points > steps + 1:
        raise ValueError(
            f"A schedule needs 2 <= n_points <= steps + 1; got steps={steps}, "
            f"n_points={n_points}. Raise steps or lower n_points."
        )
    m = n_points - 1
    while True:
        chosen = np.unique(np.round(np.geomspace(1, steps, m)).astype(int))
        if chosen.size >= n_points - 1:
            return [0, *chosen.tolist()]
        m += 1


@dataclass(frozen=True)
class RegrowthConfig:
    """Everything that determines a regrowth run's numbers.

    Attributes
    ----------
    name : str
        The configuration's name (data folder ``regrowth`` for ``"default"``,
        ``regrowth-<name>`` otherwise; see :func:`folder_name`).
    model : {"smollm2", "tiny-llama"}
        The base model (:data:`MODELS`).
    corpus : {"large", "small"}
        The text (:func:`massive_activations.suite.corpus.load_corpus`): the Debian-docs
        corpus, or the small packaged one.
    heldout_fraction, split_seed
        Which documents are held out (:func:`massive_activations.suite.tokenizer.split_documents`);
        evaluation windows come only from held-out documents, training windows only from the
        others.
    n_eval : int
        Evaluation windows, one per held-out document (the first ``seq_len`` tokens of each).
    seq_len, batch_size : int
        Tokens per window and windows per training step.
    prepend_eos : bool
        Put the end-of-text token first in every window (the tiny model's planted writer
        fires on it); SmolLM2 reads raw slices of text.
    steps, n_points : int
        Training steps, and measurements on a log-spaced schedule (:func:`log_schedule`).
    lr, warmup_steps : float, int
        AdamW's learning rate: linear warm-up over ``warmup_steps`` updates, then constant
        (a constant rate keeps the time axis of the regrowth uniform).
    weight_decay, beta1, beta2, eps, grad_clip : float
        AdamW (no weight decay by default: it would shrink large weights in both runs) and
        the gradient-norm clip.
    bf16 : bool
        Forward and backward under ``torch.autocast(bfloat16)``; weights and optimiser
        state stay float32 (master weights).  Measurements run in float32.
    ablation : {"zero_row", "reinit"}
        What the ablated run does to the writer (:data:`ABLATIONS`).
    writer_share : float
        The writer is the first sub-module whose write at the outlier's element reaches this
        share of the element's peak over layers (:func:`massive_activations.regrowth.locate.locate`).
    data_seed, ablation_seed, init_seed : int
        Order of the training windows; re-initialisation of the writer (``"reinit"``); the
        tiny model's random weights.
    save_every : int
        A resumable state is saved at every measurement and every ``save_every`` steps.
    """

    name: str = "default"
    model: str = "smollm2"
    corpus: str = "large"
    heldout_fraction: float = 0.05
    split_seed: int = 0
    n_eval: int = 16
    seq_len: int = 256
    batch_size: int = 2
    prepend_eos: bool = False
    steps: int = 600
    n_points: int = 24
    lr: float = 1e-3
    warmup_steps: int = 10
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    bf16: bool = True
    ablation: str = "zero_row"
    writer_share: float = 0.5
    data_seed: int = 0
    ablation_seed: int = 0
    init_seed: int = 0
    save_every: int = 100

    def __post_init__(self) -> None:
        problems = []
        if self.model not in MODELS:
            problems.append(f"model must be one of {MODELS}, got {self.model!r}")
        if self.corpus not in ("small", "large"):
            problems.append(f"corpus must be 'small' or 'large', got {self.corpus!r}")
        if self.ablation not in ABLATIONS:
            problems.append(f"ablation must be one of {ABLATIONS}, got {self.ablation!r}")
        if self.n_eval < 10:
            problems.append(f"n_eval must be >= 10 (evaluation windows), got {self.n_eval}")
        if self.n_points < 15:
            problems.append(f"n_points must be >= 15 (measurements), got {self.n_points}")
        if self.seq_len < 2 or self.batch_size < 1 or self.steps < 1 or self.save_every < 1:
            problems.append("seq_len >= 2, batch_size >= 1, steps >= 1, save_every >= 1")
        if not 0 < self.writer_share <= 1 or self.lr <= 0 or self.warmup_steps < 0:
            problems.append("0 < writer_share <= 1, lr > 0, warmup_steps >= 0")
        if not problems and self.n_points > self.steps + 1:
            problems.append(f"n_points ({self.n_points}) must be <= steps + 1 ({self.steps + 1})")
        if problems:
            raise ValueError("Bad regrowth configuration: " + "; ".join(problems) + ".")

    def schedule(self) -> list[int]:
        """The measurement steps (:func:`log_schedule` of ``steps``, ``n_points``)."""
        return log_schedule(self.steps, self.n_points)

    def lr_at(self, update: int) -> float:
        """Learning rate of optimiser update ``update`` (1-based): warm-up, then constant."""
        if self.warmup_steps and update <= self.warmup_steps:
            return self.lr * update / self.warmup_steps
        return self.lr

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimiser step."""
        return self.seq_len * self.batch_size

    def to_dict(self) -> dict:
        """The fields, plus the schedule."""
        return {**dataclasses.asdict(self), "schedule": self.schedule()}

    def key(self) -> str:
        """12 hex digits hashing every field but ``name`` and ``save_every`` (which change
        neither the text nor the numbers), and :data:`FORMAT_VERSION`."""
        fields = dataclasses.asdict(self)
        fields.pop("name")
        fields.pop("save_every")
        blob = json.dumps({"config": fields, "version": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def replace(self, **changes) -> RegrowthConfig:
        """A copy with some fields changed (validated)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"Unknown regrowth settings {unknown}; see RegrowthConfig.")
        return dataclasses.replace(self, **changes)


#: The named configurations: the book's experiment, and a tiny one for the smoke build.
CONFIGS = {
    "default": RegrowthConfig(),
    "smoke": RegrowthConfig(
        name="smoke",
        model="tiny-llama",
        corpus="small",
        heldout_fraction=0.2,
        n_eval=10,
        seq_len=64,
        batch_size=4,
        prepend_eos=True,
        steps=40,
        n_points=15,
        lr=3e-3,
        warmup_steps=2,
        save_every=10,
    ),
}


def get_config(config: str | RegrowthConfig = "default", **changes) -> RegrowthConfig:
    """A named configuration (or the one given), with ``changes`` applied.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones) or a bad setting.
    """
    if not isinstance(config, RegrowthConfig):
        if config not in CONFIGS:
            raise ValueError(
                f"Unknown regrowth configuration {config!r}; known: {sorted(CONFIGS)}."
            )
        config = CONFIGS[config]
    return config.replace(**changes) if changes else config


def folder_name(config: RegrowthConfig) -> str:
    """The data folder of a configuration: ``regrowth`` (default) or ``regrowth-<name>``."""
    return "regrowth" if config.name == "default" else f"regrowth-{config.name}"
