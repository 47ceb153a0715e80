"""Which bytes a checkpoint holds: weight-file SHA-256 digests, and revisions that share them.

Before a series is measured, :func:`weight_record` reads the SHA-256 of every weight file of
every checkpoint (per shard for sharded checkpoints), without downloading any weights:

* hub revisions: the LFS sha256 in the hub's file metadata
  (``HfApi.model_info(files_metadata=True)``); offline, the hub cache's blob names, which are
  the same digests (a file stored outside ``blobs/`` is hashed);
* local folders and GGUF files: the files themselves, hashed.

The weight files are those ``transformers`` loads: ``model[-i-of-n].safetensors`` when a
checkpoint has any, else ``pytorch_model[-i-of-n].bin`` (or the GGUF file).

:func:`find_duplicates` then compares files of the same name across the series and with the
repository's ``main``: a file identical to another step's, or to ``main``'s for a step other
than the final one, is flagged (``duplicate_of``), so a step branch serving another step's
weights (EleutherAI/pythia issues 205 and 206; the reference file's
``upstream_checkpoint_reports``) is named, down to the one shared shard.  The record is the
suite's ``checkpoints.parquet`` (:data:`RECORD_COLUMNS`), the file the suite path writes too,
so a table says exactly which bytes it measured.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from huggingface_hub import is_offline_mode
from tqdm import tqdm

from massive_activations import registry
from massive_activations.measurement.sources import (
    Checkpoint,
    CheckpointError,
    describe_missing,
    hub_cache_folder,
    hub_error_message,
)
from massive_activations.schedule import PYTHIA_FINAL_STEP

__all__ = [
    "RECORD_COLUMNS",
    "RECORD_FILE",
    "DuplicateWeightsWarning",
    "cached_digests",
    "checkpoint_digests",
    "find_duplicates",
    "flagged_checkpoints",
    "hub_digests",
    "is_local",
    "loaded_weight_files",
    "read_record",
    "sha256_file",
    "weight_record",
    "with_flags",
    "write_record",
]

#: The registry's name of the record (``<data>/<suite>/checkpoints.parquet``).
RECORD_FILE = "checkpoints.parquet"
#: Columns of the record: one row per (model, step, weight file).
RECORD_COLUMNS = ("model", "step", "weights_file", "weights_sha256", "duplicate_of")

_SAFETENSORS = re.compile(r"^model(?:-[0-9]+-of-[0-9]+)?\.safetensors$")
_BIN = re.compile(r"^pytorch_model(?:-[0-9]+-of-[0-9]+)?\.bin$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: Steps named in one ``duplicate_of`` entry before the rest are counted.
_SHOWN = 5


class DuplicateWeightsWarning(UserWarning):
    """Checkpoints of a series hold another checkpoint's weights."""


def loaded_weight_files(names: Sequence[str]) -> list[str]:
    """The weight files ``transformers`` loads among ``names``: safetensors, else ``.bin``."""
    safetensors = sorted(n for n in names if _SAFETENSORS.match(n))
    return safetensors or sorted(n for n in names if _BIN.match(n))


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_local(location: str) -> bool:
    """Whether a checkpoint location is a local folder (as :func:`~massive_activations.
    measurement.sources.load_model` decides), not a hub repository."""
    return Path(location).expanduser().is_dir() or str(location).startswith((".", "/", "~"))


def cached_digests(repo_id: str, revision: str, cache_dir: str | Path | None = None) -> dict:
    """``{weight file: sha256}`` of ``repo_id@revision`` from a Hugging Face cache, offline.

    A file linked into ``blobs/`` under a 64-hex name takes that name (the hub names LFS blobs
    by their sha256); any other weight file is hashed.

    Raises
    ------
    CheckpointError
        If the revision or its weight files are not in the cache; the message lists the
        cached revisions.
    """
    repo = hub_cache_folder(repo_id, cache_dir)
    ref = repo / "refs" / revision
    if ref.is_file():
        commit = ref.read_text().strip()
    elif _COMMIT.match(revision):
        commit = revision
    else:
        raise CheckpointError(describe_missing(repo_id, revision, cache_dir))
    snapshot = repo / "snapshots" / commit
    names = [p.name for p in snapshot.iterdir()] if snapshot.is_dir() else []
    files = loaded_weight_files(names)
    if not files:
        raise CheckpointError(describe_missing(repo_id, revision, cache_dir))
    digests = {}
    for name in files:
        path = snapshot / name
        target = Path(os.readlink(path)).name if path.is_symlink() else ""
        digests[name] = target if _SHA256.match(target) else sha256_file(path)
    return digests


def hub_digests(
    repo_id: str, revision: str = "main", *, cache_dir: str | Path | None = None, api=None
) -> dict:
    """``{weight file: sha256}`` of ``repo_id@revision`` from the hub's file metadata.

    No weights are downloaded: the LFS sha256 of each file comes with
    ``HfApi.model_info(files_metadata=True)`` (a small file stored without LFS, which has no
    such digest, is downloaded and hashed).  Offline (``HF_HUB_OFFLINE=1``), or when the hub
    cannot be reached, the digests come from the cache (:func:`cached_digests`).

    Parameters
    ----------
    repo_id, revision : str
        Repository and revision (``"step1000"``, ``"main"``).
    cache_dir : str or Path, optional
        Hugging Face cache folder.
    api : huggingface_hub.HfApi, optional
        The client (default a new ``HfApi()``).

    Raises
    ------
    CheckpointError
        Unknown repository or revision, gated repository, no weight file, or offline without a
        cached copy; the message names it and the fix.
    """
    if is_offline_mode():
        return cached_digests(repo_id, revision, cache_dir)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as error:
        message = hub_error_message(error, repo_id, revision, cache_dir)
        if message is not None:
            raise CheckpointError(message) from error
        try:  # the hub cannot be reached: the cache may hold the revision
            return cached_digests(repo_id, revision, cache_dir)
        except CheckpointError:
            raise CheckpointError(
                f"Cannot read the weight-file metadata of {repo_id}@{revision} "
                f"({type(error).__name__}: {error}) and the revision is not cached. Check the "
                "network, or set HF_HUB_OFFLINE=1 with a cache that holds it (--cache-dir)."
            ) from error
    siblings = {s.rfilename: s for s in info.siblings or []}
    files = loaded_weight_files(list(siblings))
    if not files:
        raise CheckpointError(
            f"{repo_id}@{revision} holds no weight file (model*.safetensors or "
            f"pytorch_model*.bin); it has {sorted(siblings)[:10]}. Check the repository."
        )
    digests = {}
    for name in files:
        lfs = siblings[name].lfs
        if lfs is not None:
            digests[name] = lfs["sha256"]
        else:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(repo_id, name, revision=revision, cache_dir=cache_dir)
            digests[name] = sha256_file(path)
    return digests


def checkpoint_digests(checkpoint: Checkpoint, *, api=None) -> dict:
    """``{weight file: sha256}`` of one checkpoint (hub metadata, or the local files hashed)."""
    if checkpoint.gguf_file:
        path = Path(checkpoint.location) / checkpoint.gguf_file
        if not path.is_file():
            raise CheckpointError(f"No GGUF file at {path}; check the path.")
        return {checkpoint.gguf_file: sha256_file(path)}
    if is_local(checkpoint.location):
        folder = Path(checkpoint.location).expanduser()
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        files = loaded_weight_files(names)
        if not files:
            raise CheckpointError(
                f"No weight file (model*.safetensors or pytorch_model*.bin) in {folder}; "
                "check the path, or save the checkpoint again."
            )
        return {name: sha256_file(folder / name) for name in files}
    return hub_digests(
        checkpoint.location,
        checkpoint.revision or "main",
        cache_dir=checkpoint.cache_dir,
        api=api,
    )


def _final_steps(checkpoints: Sequence[Checkpoint]) -> dict[str, int]:
    """Final training step per model: Pythia's for EleutherAI/pythia-*, else the last listed."""
    final: dict[str, int] = {}
    for c in checkpoints:
        if not is_local(c.location) and c.location.startswith("EleutherAI/pythia-"):
            final[c.model] = PYTHIA_FINAL_STEP
        else:
            final[c.model] = max(int(c.step), final.get(c.model, int(c.step)))
    return final


def _names(steps: Sequence[int]) -> str:
    shown = ", ".join(f"step{s}" for s in steps[:_SHOWN])
    rest = len(steps) - _SHOWN
    return shown + (f" and {rest} more" if rest > 0 else "")


def find_duplicates(
    digests: pd.DataFrame,
    main: Mapping[str, Mapping[str, str] | None],
    final_step: Mapping[str, int],
) -> pd.Series:
    """For each weight file of ``digests``, the checkpoints it duplicates ("" when none).

    Parameters
    ----------
    digests : pandas.DataFrame
        Columns ``model, step, weights_file, weights_sha256``.
    main : mapping of str to (mapping of str to str) or None
        Per model, ``main``'s ``{weight file: sha256}`` (None or absent: not known).
    final_step : mapping of str to int
        Per model, the final training step, whose weights are ``main``'s by design.

    Returns
    -------
    pandas.Series
        Aligned with ``digests``: ``"main"`` and/or the other steps holding the same file
        (``"main; also step1, step2 and 70 more"``, ``"step54000, step56000"``), or ``""``.
        The file of the final step that equals ``main``'s is not flagged; any other file
        equal to ``main``'s or to another step's is.
    """
    out = pd.Series("", index=digests.index, dtype=object)
    for (model, name, sha), rows in digests.groupby(
        ["model", "weights_file", "weights_sha256"], sort=False
    ):
        steps = sorted(int(s) for s in rows["step"])
        is_main = (main.get(model) or {}).get(name) == sha
        for index, step in zip(rows.index, rows["step"], strict=True):
            others = [s for s in steps if s != int(step)]
            if is_main and int(step) == final_step.get(model):
                continue
            if is_main:
                out[index] = "main" + (f"; also {_names(others)}" if others else "")
            elif others:
                out[index] = _names(others)
    return out


def weight_record(
    checkpoints: Sequence[Checkpoint], *, api=None, progress: bool = False
) -> pd.DataFrame:
    """Digests of every weight file of a series, with the duplicates flagged.

    Hub repositories are also compared with their ``main`` revision (when its metadata can
    be read; offline, when it is cached).

    Returns
    -------
    pandas.DataFrame
        :data:`RECORD_COLUMNS`, one row per (model, step, weight file), sorted.
    """
    rows, main = [], {}
    bar = tqdm(checkpoints, desc="weight digests", unit="ckpt", disable=not progress)
    for c in bar:
        for name, sha in checkpoint_digests(c, api=api).items():
            rows.append((c.model, int(c.step), name, sha))
        if c.model not in main and not c.gguf_file and not is_local(c.location):
            try:
                main[c.model] = hub_digests(c.location, "main", cache_dir=c.cache_dir, api=api)
            except CheckpointError:
                main[c.model] = None
                warnings.warn(
                    f"The weights of {c.location}@main are not known (offline and not cached): "
                    f"steps of {c.model} are compared with each other only, so a single step "
                    "serving main's weights is not detected.",
                    DuplicateWeightsWarning,
                    stacklevel=2,
                )
    digests = pd.DataFrame(rows, columns=list(RECORD_COLUMNS[:4]))
    digests["duplicate_of"] = find_duplicates(digests, main, _final_steps(checkpoints))
    return digests.sort_values(["model", "step", "weights_file"]).reset_index(drop=True)


def flagged_checkpoints(record: pd.DataFrame) -> pd.DataFrame:
    """One row per flagged checkpoint: ``model, step, duplicate_of`` (files joined by ``; ``).

    For a sharded checkpoint each shared file is named: ``"<file> = main; also step143000"``.
    """
    bad = record[record["duplicate_of"].astype(str) != ""]
    sharded = record.groupby(["model", "step"])["weights_file"].transform("size") > 1
    text = (
        bad["duplicate_of"]
        .astype(str)
        .where(
            ~sharded.loc[bad.index], bad["weights_file"] + " = " + bad["duplicate_of"].astype(str)
        )
    )
    grouped = text.groupby([bad["model"], bad["step"]]).agg(" | ".join)
    return grouped.rename("duplicate_of").reset_index()


def with_flags(table: pd.DataFrame, record: pd.DataFrame) -> pd.DataFrame:
    """The activation table with a ``duplicate_of`` column from the record ("" when clean)."""
    flags = flagged_checkpoints(record)
    out = table.merge(flags, on=["model", "step"], how="left")
    out["duplicate_of"] = out["duplicate_of"].fillna("").astype(str)
    return out


def _normalise(record: pd.DataFrame) -> pd.DataFrame:
    record = record.copy()
    if "weights_file" not in record:  # written by `make data`: one model.safetensors each
        record["weights_file"] = "model.safetensors"
    if "duplicate_of" not in record:
        record["duplicate_of"] = ""
    record = record[list(RECORD_COLUMNS)].astype(
        {"model": str, "step": "int64", "weights_file": str, "weights_sha256": str}
    )
    record["duplicate_of"] = record["duplicate_of"].fillna("").astype(str)
    return record.sort_values(["model", "step", "weights_file"]).reset_index(drop=True)


def read_record(root: str | Path, suite: str) -> pd.DataFrame | None:
    """The suite's ``checkpoints.parquet`` (None when absent), in :data:`RECORD_COLUMNS`."""
    record = registry.read_optional(RECORD_FILE, root, suite)
    return None if record is None else _normalise(record)


def write_record(record: pd.DataFrame, root: str | Path, suite: str) -> pd.DataFrame:
    """Merge ``record`` into the suite's ``checkpoints.parquet`` (its checkpoints replaced).

    Returns the whole record written.
    """
    record = _normalise(record)
    old = read_record(root, suite)
    if old is not None:
        keys = pd.MultiIndex.from_frame(record[["model", "step"]])
        keep = ~pd.MultiIndex.from_frame(old[["model", "step"]]).isin(keys)
        record = _normalise(pd.concat([old[keep], record], ignore_index=True))
    registry.write(record, RECORD_FILE, root, suite)
    return record
