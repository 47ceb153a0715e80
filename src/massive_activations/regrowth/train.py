"""One regrowth run: continued training with AdamW, measured on a log-spaced schedule,
resumable bit for bit.

A run lives in ``<cache>/regrowth/<run>-<config key>/``::

    spec.json                 the configuration, the run, the tracked element
    state.pt                  weights, optimiser, logs and RNG of the last saved step (resume)
    measure/step<N>.parquet   the measurement of step N (:func:`~massive_activations.regrowth.probe.measure_point`)
    activations.parquet       every measurement, with the held-out loss (when finished)
    log.parquet               step, train_loss, lr, grad_norm, heldout_loss, weights_sha256
    timing.json               wall times (training, measuring, saving), threads

Training: each step's windows come from :func:`massive_activations.regrowth.text.batches`
(a function of the step), the forward and backward passes run under
``torch.autocast(bfloat16)`` with float32 master weights, the gradient norm is clipped, and
AdamW updates at the configuration's learning rate.  At every step of the schedule the model
is measured (float32) and its held-out loss computed; at every measurement and every
``save_every`` steps the state is written atomically.  A killed run restarts from its last
state and, since every input of a step is a function of the step, redoes the same updates:
the finished run is bit-identical to one never interrupted (with the same thread count).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from massive_activations.registry import atomic_write
from massive_activations.regrowth.config import RegrowthConfig
from massive_activations.regrowth.probe import heldout_loss, measure_point
from massive_activations.regrowth.text import RegrowthText, batches
from massive_activations.suite.corpus import cache_root

__all__ = ["read_run", "run_dir", "train_run", "weights_sha256"]


def run_dir(config: RegrowthConfig, run: str, cache: Path | str | None = None) -> Path:
    """``<cache>/regrowth/<run>-<config key>``."""
    root = Path(cache) if cache is not None else cache_root()
    return root / "regrowth" / f"{run}-{config.key()}"


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of every tensor of the state dict (names and float bytes), in order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _log_frame(log: dict, heldout: dict, weights: dict) -> pd.DataFrame:
    steps = pd.DataFrame(
        {
            "step": np.asarray(log["step"], dtype=np.int64),
            "train_loss": np.asarray(log["train_loss"], dtype=np.float64),
            "lr": np.asarray(log["lr"], dtype=np.float64),
            "grad_norm": np.asarray(log["grad_norm"], dtype=np.float64),
        }
    )
    points = pd.DataFrame(
        {
            "step": np.asarray(list(heldout), dtype=np.int64),
            "heldout_loss": np.asarray(list(heldout.values()), dtype=np.float64),
            "weights_sha256": [weights[s] for s in heldout],
        }
    )
    frame = steps.merge(points, on="step", how="outer").sort_values("step", kind="stable")
    frame["weights_sha256"] = frame["weights_sha256"].fillna("")
    return frame.reset_index(drop=True)


def read_run(folder: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(activations, log)`` of a finished run folder."""
    folder = Path(folder)
    if not (folder / "log.parquet").is_file():
        raise FileNotFoundError(
            f"The run in {folder} has not finished: rerun `python -m "
            "massive_activations.regrowth.run` (it resumes)."
        )
    return pd.read_parquet(folder / "activations.parquet"), pd.read_parquet(folder / "log.parquet")


def train_run(
    config: RegrowthConfig,
    run: str,
    start_model: Callable[[], nn.Module],
    text: RegrowthText,
    element: dict,
    *,
    cache: Path | str | None = None,
    bar=None,
    progress: bool = True,
    on_step: Callable[[str, int], None] | None = None,
) -> Path:
    """Train one run (or finish an interrupted one) and return its folder.

    Parameters
    ----------
    config : RegrowthConfig
    run : str
        The run's name (``"control"``, ``"ablated"``); part of the folder's name.
    start_model : callable
        Returns the model at step 0 (float32; the ablation already applied).  Called on
        every start, resumed or not (a resumed run then loads its saved weights).
    text : RegrowthText
        Training stream and evaluation windows (:func:`~massive_activations.regrowth.text.prepare_text`).
    element : dict
        ``position`` and ``channel`` of the tracked element.
    cache : path, optional
        Cache root (default :func:`~massive_activations.suite.corpus.cache_root`).
    bar : tqdm, optional
        A progress bar to advance by one per step (the command's bar over all runs); else
        the run shows its own when ``progress``.
    progress : bool
        Show a progress bar.
    on_step : callable, optional
        ``on_step(run, step)`` after every step (after its measurement and save); an
        exception raised there stops the run as a kill would.
    """
    from tqdm import tqdm

    folder = run_dir(config, run, cache)
    if (folder / "log.parquet").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"config": config.to_dict(), "key": config.key(), "run": run, "element": element}
    spec_text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
    atomic_write(folder / "spec.json", lambda tmp: tmp.write_text(spec_text))
    schedule = config.schedule()
    data = batches(text, config)
    position, channel = int(element["position"]), int(element["channel"])

    model = start_model()
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        weight_decay=config.weight_decay,
    )
    log: dict[str, list] = {"step": [], "train_loss": [], "lr": [], "grad_norm": []}
    heldout: dict[int, float] = {}
    weights: dict[int, str] = {}
    timing = {"train_s": 0.0, "measure_s": 0.0, "save_s": 0.0}
    step = 0
    state_path = folder / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        log, heldout, weights = state["log"], state["heldout"], state["weights"]
        step, timing = state["step"], state["timing"]
        torch.set_rng_state(state["rng"])
        if state["threads"] != torch.get_num_threads():
            warnings.warn(
                f"Resuming {folder.name} with {torch.get_num_threads()} torch threads; it was "
                f"saved with {state['threads']}. The numbers then differ in rounding from an "
                "uninterrupted run: resume with the same thread count (--threads) to keep the "
                "run bit-identical.",
                stacklevel=2,
            )
    model.train()

    def measure(s: int) -> None:
        start = time.perf_counter()
        table = measure_point(model, text.eval_ids, position, channel)
        heldout[s] = heldout_loss(model, text.eval_ids, config.batch_size)
        weights[s] = weights_sha256(model)
        table = table.assign(run=run, step=s, heldout_loss=heldout[s])
        atomic_write(
            folder / "measure" / f"step{s}.parquet",
            lambda tmp: table.to_parquet(tmp, index=False),
        )
        model.train()
        timing["measure_s"] += time.perf_counter() - start

    def save() -> None:
        start = time.perf_counter()
        state = {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "log": log,
            "heldout": heldout,
            "weights": weights,
            "timing": timing,
            "rng": torch.get_rng_state(),
            "threads": torch.get_num_threads(),
        }
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))
        timing["save_s"] += time.perf_counter() - start

    own = bar is None and progress
    if own:
        bar = tqdm(total=config.steps, initial=step, desc=run, unit="step")
    try:
        if step == 0 and 0 not in heldout:
            measure(0)
            save()
        while step < config.steps:
            start = time.perf_counter()
            lr = config.lr_at(step + 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = data.batch(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            log["step"].append(step)
            log["train_loss"].append(float(loss.detach()))
            log["lr"].append(lr)
            log["grad_norm"].append(float(grad_norm))
            timing["train_s"] += time.perf_counter() - start
            if step in schedule:
                measure(step)
            if step in schedule or step % config.save_every == 0:
                save()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(run=run, loss=f"{log['train_loss'][-1]:.3f}", refresh=False)
            if on_step is not None:
                on_step(run, step)
    finally:
        if own:
            bar.close()

    parts = [pd.read_parquet(folder / "measure" / f"step{s}.parquet") for s in schedule]
    activations = pd.concat(parts, ignore_index=True)
    frame = _log_frame(log, heldout, weights)
    record = {**timing, "threads": torch.get_num_threads(), "steps": config.steps}
    record["train_s_per_step"] = timing["train_s"] / config.steps
    atomic_write(folder / "timing.json", lambda tmp: tmp.write_text(json.dumps(record) + "\n"))
    atomic_write(folder / "activations.parquet", lambda t: activations.to_parquet(t, index=False))
    atomic_write(folder / "log.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
    state_path.unlink(missing_ok=True)
    return folder
