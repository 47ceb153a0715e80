"""Train one model of a suite with Pythia's recipe, checkpointing and measuring as it goes.

One run lives in ``<cache>/runs/<model>-<key>/`` (``key``: :func:`~massive_activations.suite.configs.
config_hash`)::

    spec.json                 the full configuration the key hashes
    step<N>/                  checkpoints (save_pretrained: config, safetensors, tokenizer)
    measure/parts/...         activation statistics of each checkpoint (ActivationStore parts)
    state.pt                  weights, optimiser and logs of the latest checkpoint (resume)
    log.parquet               step, train_loss, lr, grad_norm, val_loss (when finished)
    weights.parquet           step, weights_sha256 of each checkpoint's model.safetensors
    timing.json               wall time (kept out of the data: it is not deterministic)

At every step of the checkpoint schedule the in-memory model is saved, measured with
:func:`massive_activations.measurement.measure.measure_model` (the code that extraction runs on the saved
checkpoints, so both give the same numbers), its validation loss computed, and only then
``state.pt`` replaced.  A killed run restarts from its last checkpoint and, as the data order
and every other input is a function of the step, redoes the same updates bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from massive_activations.measurement.measure import measure_inputs
from massive_activations.measurement.store import ActivationStore
from massive_activations.registry import atomic_write
from massive_activations.suite.configs import (
    ModelSpec,
    Recipe,
    Suite,
    config_hash,
    make_model,
    run_name,
)
from massive_activations.suite.corpus import cache_root
from massive_activations.suite.tokenizer import TokenData, hf_tokenizer

__all__ = [
    "Batches",
    "lr_at",
    "measurement_settings",
    "read_log",
    "run_dir",
    "train_model",
    "validation_sequences",
]

#: Data type of the checkpoints and of the measurement (the ``dtype`` column).
CHECKPOINT_DTYPE = "float32"


class Batches:
    """The training sequences of every step, the same for every model.

    The training stream is cut into consecutive chunks of ``seq_len`` tokens (``seq_len - 1``
    with ``prepend_eot``, EOT then goes first); epoch ``e`` visits the chunks in the order of a
    permutation drawn from ``numpy.random.default_rng([data_seed, e])``.  Step ``s`` (0-based)
    takes the next ``batch_size`` chunks, so any step's batch is known without replaying the
    ones before it.

    Parameters
    ----------
    tokens : numpy.ndarray
        The training token stream.
    recipe : Recipe
        ``seq_len``, ``batch_size``, ``prepend_eot`` and ``data_seed``.
    eot_id : int
        Id of the EOT token.
    """

    def __init__(self, tokens: np.ndarray, recipe: Recipe, eot_id: int) -> None:
        self.recipe = recipe
        self.eot_id = int(eot_id)
        self.chunk = recipe.seq_len - int(recipe.prepend_eot)
        self.n_chunks = len(tokens) // self.chunk
        if self.n_chunks < recipe.batch_size:
            raise ValueError(
                f"The training stream has {len(tokens)} tokens, fewer than one batch of "
                f"{recipe.batch_size} x {self.chunk}; use a larger corpus or smaller batches."
            )
        self.chunks = np.asarray(tokens[: self.n_chunks * self.chunk]).reshape(
            self.n_chunks, self.chunk
        )
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {
                epoch: np.random.default_rng([self.recipe.data_seed, epoch]).permutation(
                    self.n_chunks
                )
            }
        return self._perms[epoch]

    def epochs(self, steps: int) -> float:
        """Passes over the training stream that ``steps`` steps make."""
        return steps * self.recipe.batch_size / self.n_chunks

    def batch(self, step: int) -> torch.Tensor:
        """The input ids of step ``step`` (0-based), shape ``(batch_size, seq_len)``."""
        b = self.recipe.batch_size
        rows = []
        for g in range(step * b, (step + 1) * b):
            epoch, i = divmod(g, self.n_chunks)
            rows.append(self.chunks[self._perm(epoch)[i]])
        ids = torch.from_numpy(np.stack(rows).astype(np.int64))
        if self.recipe.prepend_eot:
            ids = torch.cat([torch.full((b, 1), self.eot_id, dtype=torch.long), ids], dim=1)
        return ids


def validation_sequences(heldout: np.ndarray, recipe: Recipe, eot_id: int) -> torch.Tensor:
    """The first ``recipe.val_sequences`` consecutive windows of the held-out stream.

    Formatted as the training sequences (EOT first with ``prepend_eot``).
    """
    chunk = recipe.seq_len - int(recipe.prepend_eot)
    n = min(recipe.val_sequences, len(heldout) // chunk)
    if n < 1:
        raise ValueError(
            f"The held-out stream ({len(heldout)} tokens) is shorter than one sequence of "
            f"{chunk}; raise heldout_fraction."
        )
    ids = torch.from_numpy(np.asarray(heldout[: n * chunk]).astype(np.int64).reshape(n, chunk))
    if recipe.prepend_eot:
        ids = torch.cat([torch.full((n, 1), eot_id, dtype=torch.long), ids], dim=1)
    return ids


def lr_at(update: int, steps: int, recipe: Recipe) -> float:
    """Learning rate of optimiser update ``update`` (1-based) of ``steps``.

    Linear warm-up over ``max(1, round(warmup_fraction * steps))`` updates to ``recipe.lr``,
    then cosine decay to ``min_lr_ratio * lr`` at update ``steps`` (Pythia's schedule).
    """
    warmup = max(1, round(recipe.warmup_fraction * steps))
    if update <= warmup:
        return recipe.lr * update / warmup
    progress = (update - warmup) / max(1, steps - warmup)
    low = recipe.min_lr_ratio * recipe.lr
    return low + (recipe.lr - low) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def measurement_settings(inputs: dict[str, torch.Tensor], recipe: Recipe) -> dict:
    """The measurement settings the activation store records, exactly as extraction does."""
    from massive_activations.measurement.extract import measurement_settings as extraction_settings

    return extraction_settings(inputs, batch_size=1, attention_sink=recipe.attention_sink)


def run_dir(spec: ModelSpec, suite: Suite, data: TokenData, cache=None, device="cpu") -> Path:
    """The folder of a run: ``<cache>/runs/<model>-<config hash>``."""
    root = Path(cache) if cache is not None else cache_root()
    key = config_hash(spec, suite.recipe_for(spec), data.key, device)
    return root / "runs" / run_name(spec, key)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@torch.no_grad()
def _val_loss(model, ids: torch.Tensor, recipe: Recipe, device: torch.device) -> float:
    was_training = model.training
    model.eval()
    losses = []
    for start in range(0, ids.shape[0], recipe.batch_size):
        batch = ids[start : start + recipe.batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.bf16):
            losses.append(float(model(input_ids=batch, labels=batch).loss))
    model.train(was_training)
    return float(np.mean(losses))


def _save_checkpoint(model, tokenizer, folder: Path) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # no "Writing model shards" bar at every checkpoint
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    finally:
        if was_enabled:
            logging.enable_progress_bar()
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def _sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _log_frame(log: dict, val: dict) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "step": np.asarray(log["step"], dtype=np.int64),
            "train_loss": np.asarray(log["loss"], dtype=np.float64),
            "lr": np.asarray(log["lr"], dtype=np.float64),
            "grad_norm": np.asarray(log["grad_norm"], dtype=np.float64),
        }
    )
    vals = pd.DataFrame(
        {"step": np.asarray(list(val), dtype=np.int64), "val_loss": list(val.values())}
    )
    df = df.merge(vals, on="step", how="outer").sort_values("step", kind="stable")
    return df.reset_index(drop=True)


def read_log(folder: Path | str) -> pd.DataFrame:
    """The training log of a finished run: step, train_loss, lr, grad_norm, val_loss.

    Step 0 has only ``val_loss``; ``val_loss`` is NaN between checkpoints.
    """
    path = Path(folder) / "log.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"No training log at {path}: the run has not finished.")
    return pd.read_parquet(path)


def train_model(
    spec: ModelSpec,
    suite: Suite,
    data: TokenData,
    eval_ids: torch.Tensor,
    *,
    cache: Path | str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    on_step: Callable[[str, int], None] | None = None,
) -> Path:
    """Train ``spec`` (or finish an interrupted run) and return its run folder.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    suite : Suite
        Its suite (the :class:`~massive_activations.suite.configs.Recipe` and schedule).
    data : TokenData
        Tokenizer and token streams (:func:`massive_activations.suite.tokenizer.prepare_tokens`).
    eval_ids : dict of str to torch.LongTensor
        Evaluation sequences of each variant, measured at every checkpoint
        (:func:`massive_activations.suite.configs.eval_sequences`).
    cache : path, optional
        Cache root (default :func:`~massive_activations.suite.corpus.cache_root`).
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...  Part of the cache key.
    threads : int, optional
        ``torch.set_num_threads`` for this run (results depend on it through rounding).
    progress : bool
        Show a progress bar.
    on_step : callable, optional
        ``on_step(model_name, step)`` after every optimiser step (progress reporting; an
        exception raised there stops the run as a kill would).

    Returns
    -------
    Path
        The run folder (see the module docstring).
    """
    from tqdm import tqdm

    recipe = suite.recipe_for(spec)
    dev = torch.device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    folder = run_dir(spec, suite, data, cache, device)
    if (folder / "log.parquet").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    spec_record = {
        "model": asdict(spec),
        "suite": suite.name,
        "recipe": asdict(recipe),
        "tokens": data.key,
        "device": dev.type,
        "key": folder.name.rsplit("-", 1)[1],
    }
    spec_text = json.dumps(spec_record, indent=1, sort_keys=True) + "\n"
    atomic_write(folder / "spec.json", lambda tmp: tmp.write_text(spec_text))

    schedule = suite.schedule(spec)
    batches = Batches(data.train, recipe, data.eot_id)
    val_ids = validation_sequences(data.heldout, recipe, data.eot_id)
    tokenizer = hf_tokenizer(data.tokenizer)
    store = ActivationStore(folder, "measure")
    store.check_settings(measurement_settings(eval_ids, recipe))

    model = make_model(spec, recipe, data.vocab_size, data.eot_id)
    optimizer = torch.optim.AdamW(
        _param_groups(model, recipe.weight_decay),
        lr=recipe.lr,
        betas=(recipe.beta1, recipe.beta2),
        eps=recipe.eps,
    )
    log: dict[str, list] = {"step": [], "loss": [], "lr": [], "grad_norm": []}
    val: dict[int, float] = {}
    weights: dict[int, str] = {}
    step = 0
    elapsed = 0.0
    state_path = folder / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        model.to(dev)
        optimizer.load_state_dict(state["optimizer"])
        log, val, step, elapsed = state["log"], state["val"], state["step"], state["elapsed"]
        weights = state["weights"]
    model.to(dev)
    model.train()
    started = time.perf_counter() - elapsed

    def checkpoint(s: int) -> None:
        _save_checkpoint(model, tokenizer, folder / f"step{s}")
        weights[s] = _sha256_file(folder / f"step{s}" / "model.safetensors")
        df = measure_inputs(model, eval_ids, attention_sink=recipe.attention_sink)
        store.write_part(df.assign(model=spec.name, step=s, dtype=CHECKPOINT_DTYPE))
        val[s] = _val_loss(model, val_ids, recipe, dev)
        state = {
            "step": s,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "log": log,
            "val": val,
            "weights": weights,
            "elapsed": time.perf_counter() - started,
        }
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))

    if step == 0 and 0 not in val:
        checkpoint(0)
    bar = tqdm(total=spec.steps, initial=step, desc=spec.name, unit="step", disable=not progress)
    with bar:
        while step < spec.steps:
            lr = lr_at(step + 1, spec.steps, recipe)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = batches.batch(step).to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=recipe.bf16):
                loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            log["step"].append(step)
            log["loss"].append(float(loss.detach()))
            log["lr"].append(lr)
            log["grad_norm"].append(float(grad_norm))
            bar.update(1)
            if step in schedule:
                checkpoint(step)
            if on_step is not None:
                on_step(spec.name, step)

    frame = _log_frame(log, val)
    timing = {"seconds": time.perf_counter() - started, "threads": torch.get_num_threads()}
    atomic_write(folder / "timing.json", lambda tmp: tmp.write_text(json.dumps(timing) + "\n"))
    digests = pd.DataFrame(
        {"step": list(weights), "weights_sha256": list(weights.values())}
    ).sort_values("step", kind="stable")
    atomic_write(folder / "weights.parquet", lambda tmp: digests.to_parquet(tmp, index=False))
    atomic_write(folder / "log.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
    state_path.unlink(missing_ok=True)
    return folder
