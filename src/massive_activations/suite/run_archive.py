"""Archiving finished training runs, so a new machine does not retrain them.

A run's *record* is every file of its run folder but the checkpoints' weights and the
resume state: configuration, the measurements of both evaluation variants at every
checkpoint, the training log, the weight digests and timing, under 1 MB per run.
``python -m massive_activations.suite.make_data --archive DIR`` copies each record to
``DIR/<model>-<config key>/`` the moment its run ends and restores the records found there
before training; runs are matched by configuration key, so a record of another
configuration (corpus, recipe, tokens) is never used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

__all__ = ["archive_run", "restore_runs"]


def _is_weights(path: Path) -> bool:
    """Checkpoint folders and the resume state: what a run's archived record leaves out."""
    return path.name == "state.pt" or (
        path.is_dir() and path.name.startswith("step") and path.name[4:].isdigit()
    )


def archive_run(folder: Path | str, archive: Path | str) -> Path:
    """Copy a finished run's record (all but weights) to ``<archive>/<run folder name>/``.

    Written to a staging folder and renamed, so an archive never holds half a record.
    Returns the archived folder.
    """
    folder, archive = Path(folder), Path(archive)
    if not (folder / "log.parquet").is_file():
        raise ValueError(f"Run {folder} is not finished (no log.parquet); train it first.")
    target = archive / folder.name
    staging = archive / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path in folder.iterdir():
        if _is_weights(path):
            continue
        if path.is_dir():
            shutil.copytree(path, staging / path.name)
        else:
            shutil.copy2(path, staging / path.name)
    old = archive / f".{folder.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def restore_runs(archive: Path | str, cache: Path | str, names: Sequence[str]) -> list[str]:
    """Copy the archived records of the runs ``names`` into ``<cache>/runs/``.

    A run already finished in the cache is left alone; an unfinished one (a killed run's
    checkpoints and resume state) is replaced by the finished record.  Returns the names
    restored.
    """
    archive, runs = Path(archive), Path(cache) / "runs"
    restored = []
    for name in names:
        record = archive / name
        if not (record / "log.parquet").is_file() or (runs / name / "log.parquet").is_file():
            continue
        runs.mkdir(parents=True, exist_ok=True)
        staging = runs / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(record, staging)
        if (runs / name).exists():
            shutil.rmtree(runs / name)
        os.replace(staging, runs / name)
        restored.append(name)
    return restored
