"""Extract massive-activation statistics of a checkpoint series into the suite's table.

Command line (each step has ``--help``)::

    python -m massive_activations.measurement.extract extract --suite pythia-70m --pythia pythia-70m \\
        --steps log --text docs.txt --device cuda
    python -m massive_activations.measurement.extract extract --suite mini --local .cache/suites/mini \\
        --tokens eval_ids.npy --shard 0/4
    python -m massive_activations.measurement.extract merge --suite mini
    python -m massive_activations.measurement.extract import --suite paper path/to/pythia_70m/stats

    python -m massive_activations.measurement.extract extract --suite pythia --pythia pythia-1b \
        --text docs.txt --device cuda --dtype fp16 --executor ray --address auto

One unit of work is one (model, step, dtype): it is loaded, measured, written to its part file
and freed before the next, so a killed run restarts where it stopped (see
:mod:`massive_activations.measurement.store`).  With ``--executor ray`` each unit is a Ray
task (:mod:`massive_activations.measurement.ray_executor`), written by the same store.

Before any unit runs, the SHA-256 of every checkpoint's weight files is read (the hub's file
metadata, no download: :mod:`massive_activations.measurement.weights`) and written beside the
table (``checkpoints.parquet``); checkpoints that hold another step's weights are named and
not measured unless ``--allow-duplicates`` is given.  ``import`` runs the statistics checks
of :mod:`massive_activations.measurement.integrity` on the imported table.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from massive_activations.measurement.integrity import run_checks
from massive_activations.measurement.measure import as_inputs, measure_inputs
from massive_activations.measurement.raw_import import import_raw
from massive_activations.measurement.ray_executor import ExtractionFailed, RayExecutor, run_units
from massive_activations.measurement.sources import (
    Checkpoint,
    CheckpointError,
    gguf_checkpoint,
    hub_checkpoints,
    load_tokenizer,
    local_checkpoints,
    parse_dtype,
    pythia_checkpoints,
)
from massive_activations.measurement.store import (
    ActivationStore,
    find_shards,
    merge_tables,
    parse_shard,
    shard_jobs,
    write_table,
)
from massive_activations.measurement.weights import (
    DuplicateWeightsWarning,
    flagged_checkpoints,
    weight_record,
    write_record,
)

__all__ = [
    "EXECUTORS",
    "document_windows",
    "extract",
    "main",
    "measure_checkpoint",
    "measurement_settings",
    "token_windows",
    "tokenize_text",
]

#: Ways to run the units: in this process, one after the other, or as Ray tasks.
EXECUTORS = ("inprocess", "ray")


def token_windows(ids: np.ndarray | torch.Tensor, n_sequences: int, seq_len: int) -> torch.Tensor:
    """Evaluation sequences from token ids.

    Parameters
    ----------
    ids : array of int
        1-D: a token stream cut into consecutive ``seq_len`` windows (Sun et al.'s way);
        2-D: sequences, of which the first ``n_sequences`` rows and ``seq_len`` columns are
        taken.
    n_sequences, seq_len : int
        Shape of the result.

    Returns
    -------
    torch.LongTensor
        Shape ``(n_sequences, seq_len)``.
    """
    ids = torch.as_tensor(np.asarray(ids)).long()
    if n_sequences < 1 or seq_len < 1:
        raise ValueError(f"n_sequences and seq_len must be >= 1; got {n_sequences}, {seq_len}.")
    if ids.ndim == 1:
        need = n_sequences * seq_len
        if ids.numel() < need:
            raise ValueError(
                f"{ids.numel()} tokens make fewer than {n_sequences} windows of {seq_len}: "
                f"supply at least {need} tokens, or lower n_sequences / seq_len."
            )
        return ids[:need].reshape(n_sequences, seq_len).clone()
    if ids.ndim == 2:
        if ids.shape[0] < n_sequences or ids.shape[1] < seq_len:
            raise ValueError(
                f"Token array of shape {tuple(ids.shape)} is smaller than the requested "
                f"({n_sequences}, {seq_len}); lower n_sequences / seq_len."
            )
        return ids[:n_sequences, :seq_len].clone()
    raise ValueError(f"Token ids must be 1-D or 2-D; got shape {tuple(ids.shape)}.")


def document_windows(
    documents, tokenizer, n_sequences: int, seq_len: int, seed: int = 0
) -> torch.Tensor:
    """One evaluation sequence from each of ``n_sequences`` different documents.

    The first ``seq_len`` tokens (no special tokens) of documents drawn at random (numpy
    generator seeded with ``seed``) among those at least ``seq_len`` tokens long, so no two
    sequences share text and each starts where a document does.

    Raises
    ------
    ValueError
        When fewer than ``n_sequences`` documents are long enough; the message says how many
        are and how to ask for fewer or shorter sequences.
    """
    ids = [tokenize_text(d, tokenizer) for d in documents]
    long = [i for i, t in enumerate(ids) if t.size >= seq_len]
    if len(long) < n_sequences:
        raise ValueError(
            f"Only {len(long)} of {len(ids)} documents hold >= {seq_len} tokens; ask for at "
            f"most {len(long)} sequences or a shorter seq_len."
        )
    chosen = np.random.default_rng(seed).choice(long, size=n_sequences, replace=False)
    return torch.as_tensor(np.stack([ids[i][:seq_len] for i in sorted(chosen)])).long()


def tokenize_text(text: str, tokenizer) -> np.ndarray:
    """Token ids of ``text`` without special tokens (as Sun et al.), as a 1-D int64 array."""
    return np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)


def _fingerprint(input_ids: torch.Tensor) -> str:
    data = input_ids.cpu().numpy().astype("<i8")
    return hashlib.sha256(str(data.shape).encode() + data.tobytes()).hexdigest()


def measurement_settings(
    input_ids: torch.Tensor | Mapping[str, torch.Tensor],
    *,
    batch_size: int = 1,
    attention_sink: bool = False,
) -> dict:
    """The settings a suite's units must share (recorded by ``ActivationStore.check_settings``).

    The token ids of each variant (:func:`~massive_activations.measurement.measure.as_inputs`) enter as
    their shape and SHA-256; the dtype is not a setting (it is part of each unit's key, so one
    suite can hold fp32 and fp16 measurements side by side).
    """
    return {
        "variants": {
            name: {
                "n_sequences": int(ids.shape[0]),
                "seq_len": int(ids.shape[1]),
                "tokens_sha256": _fingerprint(ids),
            }
            for name, ids in as_inputs(input_ids).items()
        },
        "batch_size": int(batch_size),
        "attention_sink": bool(attention_sink),
    }


def measure_checkpoint(
    checkpoint: Checkpoint,
    *,
    input_ids: torch.Tensor | Mapping[str, torch.Tensor],
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    attention_sink: bool = False,
) -> pd.DataFrame:
    """Load one checkpoint, measure every variant of ``input_ids``, free it: one unit's rows.

    Returns
    -------
    pandas.DataFrame
        :func:`~massive_activations.measurement.measure.measure_inputs`' rows with ``model``,
        ``step`` and ``dtype``.
    """
    dtype_name, _ = parse_dtype(dtype)
    model = checkpoint.load(dtype=dtype_name, device=device)
    try:
        df = measure_inputs(model, input_ids, attention_sink=attention_sink, batch_size=batch_size)
    finally:
        del model
        gc.collect()
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return df.assign(model=checkpoint.model, step=checkpoint.step, dtype=dtype_name)


def _check_weights(
    checkpoints: Sequence[Checkpoint], allow_duplicates: bool, progress: bool
) -> tuple[pd.DataFrame, dict]:
    """The series' weight record and ``{(model, step): what it duplicates}``, warned about."""
    record = weight_record(checkpoints, progress=progress)
    flags = {
        (m, int(s)): text
        for m, s, text in flagged_checkpoints(record).itertuples(index=False, name=None)
    }
    if flags:
        listed = "\n".join(f"  {m} step {s}: same weights as {t}" for (m, s), t in flags.items())
        action = (
            "measured anyway (--allow-duplicates); checkpoints.parquet flags them"
            if allow_duplicates
            else "not measured (pass allow_duplicates=True / --allow-duplicates to measure them)"
        )
        warnings.warn(
            f"{len(flags)} checkpoint(s) hold another checkpoint's weights, {action}:\n{listed}",
            DuplicateWeightsWarning,
            stacklevel=3,
        )
    return record, flags


def extract(
    checkpoints: Sequence[Checkpoint],
    input_ids: torch.Tensor,
    store: ActivationStore,
    *,
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    attention_sink: bool = False,
    shard: str | tuple[int, int] | None = None,
    progress: bool = True,
    allow_duplicates: bool = False,
    executor: str | RayExecutor = "inprocess",
) -> pd.DataFrame:
    """Measure every checkpoint not yet stored, one unit at a time, and write the suite's table.

    First the SHA-256 of every checkpoint's weight files is read (hub metadata, no download;
    local files hashed: :func:`~massive_activations.measurement.weights.weight_record`):
    a checkpoint holding another step's weights (or ``main``'s, for a step other than the
    final one) is flagged and, unless ``allow_duplicates``, not measured.  The record is
    written beside the table as ``checkpoints.parquet``.

    Parameters
    ----------
    checkpoints : sequence of Checkpoint
        The series (e.g. :func:`~massive_activations.measurement.sources.pythia_checkpoints`).
    input_ids : torch.LongTensor or mapping of str to torch.LongTensor
        Evaluation sequences, shape ``(n_sequences, seq_len)``, the same for every checkpoint:
        raw text slices, or ``{variant: sequences}`` (:func:`~massive_activations.measurement.measure.
        as_inputs`); every variant is measured on each checkpoint.
    store : ActivationStore
        Where the suite's data live.
    dtype : str, default "float32"
        Weights' dtype: float32, bfloat16 or float16 (fp32, bf16, fp16).
    device : str or torch.device, default "cpu"
        Where each checkpoint runs (with Ray: ``"cpu"`` or ``"cuda"``).
    batch_size : int, default 1
        Sequences per forward pass.
    attention_sink : bool, default False
        Also record ``attn_first_pos`` (see :func:`~massive_activations.measurement.measure.measure_model`).
    shard : str or (int, int), optional
        ``"i/n"``: measure only shard ``i`` of ``n`` of the checkpoints and write
        ``activations.shard-i-of-n.parquet`` instead of ``activations.parquet``.
    progress : bool, default True
        Show a progress bar over checkpoints.
    allow_duplicates : bool, default False
        Measure the checkpoints whose weights duplicate another's too (they stay flagged in
        ``checkpoints.parquet``; :func:`~massive_activations.measurement.weights.with_flags`
        adds the flag to the table).
    executor : "inprocess", "ray" or RayExecutor, default "inprocess"
        ``"ray"``: each unit is a Ray task on a local instance (127.0.0.1); a
        :class:`~massive_activations.measurement.ray_executor.RayExecutor` sets the cluster
        address, GPU share and retries.

    Returns
    -------
    pandas.DataFrame
        The table written: the whole suite, or this shard's checkpoints.

    Raises
    ------
    ExtractionFailed
        With the Ray executor, when units failed after their retries: the table of the others
        is written first, and the exception lists each failed unit with its reason.
    """
    dtype_name, _ = parse_dtype(dtype)
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ValueError(f"Unknown executor {executor!r}; use one of {EXECUTORS}.")
        executor = RayExecutor() if executor == "ray" else None
    keys = [c.key for c in checkpoints]
    if len(set(keys)) != len(keys):
        raise ValueError("The checkpoint series lists a (model, step) twice; remove duplicates.")
    if shard is not None:
        parse_shard(shard)
    store.check_settings(
        measurement_settings(input_ids, batch_size=batch_size, attention_sink=attention_sink)
    )
    record, flags = _check_weights(checkpoints, allow_duplicates, progress)
    jobs = shard_jobs(checkpoints, shard)
    if not allow_duplicates:
        jobs = [c for c in jobs if c.key not in flags]
    done = store.done_units()
    todo = [c for c in jobs if (c.model, c.step, dtype_name) not in done]
    shared = {
        "input_ids": input_ids,
        "dtype": dtype_name,
        "device": str(device),
        "batch_size": batch_size,
        "attention_sink": attention_sink,
    }
    failures = []
    if executor is None:
        bar = tqdm(todo, desc=f"extract {store.suite}", unit="ckpt", disable=not progress)
        for checkpoint in bar:
            bar.set_postfix_str(f"{checkpoint.model} step {checkpoint.step}")
            store.write_part(measure_checkpoint(checkpoint, **shared))
    else:
        failures = run_units(
            todo, measure_checkpoint, shared, store.write_part, executor,
            description=f"extract {store.suite} (ray)", progress=progress,
        )  # fmt: skip
    failed = {(f.model, f.step) for f in failures}
    if shard is None:
        table = store.consolidate()
    else:
        table = store.rows((c.model, c.step, dtype_name) for c in jobs if c.key not in failed)
        write_table(table, store.shard_path(*parse_shard(shard)))
    write_record(record, store.dir.parent, store.suite)
    if failures:
        raise ExtractionFailed(failures, table)
    return table


def _checkpoints(args: argparse.Namespace) -> list[Checkpoint]:
    if args.models and not args.local:
        raise ValueError("--models selects models of a --local suite; drop it or add --local.")
    if args.pythia:
        return [
            c
            for name in args.pythia
            for c in pythia_checkpoints(name, args.steps, cache_dir=args.cache_dir)
        ]
    if args.hub:
        try:
            steps = sorted({int(s.strip().removeprefix("step")) for s in args.steps.split(",")})
        except ValueError:
            raise ValueError(
                f"--hub needs --steps as a list such as 0,1000,2000 (got {args.steps!r}): the "
                "revisions of an arbitrary repository are not known offline."
            ) from None
        return [
            c
            for repo in args.hub
            for c in hub_checkpoints(
                repo, steps, revision_template=args.revision_template, cache_dir=args.cache_dir
            )
        ]
    if args.local:
        return local_checkpoints(args.local, args.models, args.steps)
    return [gguf_checkpoint(args.gguf or None)]


def _input_ids(args: argparse.Namespace, first: Checkpoint) -> torch.Tensor:
    if args.tokens:
        path = Path(args.tokens)
        if not path.is_file():
            raise ValueError(f"No token file at {path}; pass a .npy array of token ids.")
        ids = np.load(path, allow_pickle=False)
    else:
        path = Path(args.text)
        if not path.is_file():
            raise ValueError(f"No text file at {path}; pass a UTF-8 text file.")
        tokenizer_source = first
        if args.tokenizer:
            tokenizer_source = Checkpoint("tokenizer", 0, args.tokenizer, cache_dir=args.cache_dir)
        ids = tokenize_text(path.read_text(encoding="utf-8"), load_tokenizer(tokenizer_source))
    return token_windows(ids, args.n_sequences, args.seq_len)


def _executor(args: argparse.Namespace) -> str | RayExecutor:
    ray_only = {"--address": args.address, "--gpus-per-task": args.gpus_per_task}
    ray_only.update({"--num-cpus": args.num_cpus, "--gpu-memory-gib": args.gpu_memory_gib})
    given = [flag for flag, value in ray_only.items() if value is not None]
    if args.executor != "ray":
        if given:
            raise ValueError(f"{', '.join(given)} need --executor ray.")
        return args.executor
    return RayExecutor(
        address=args.address,
        gpus_per_task=args.gpus_per_task,
        retries=args.retries,
        num_cpus=args.num_cpus,
        gpu_memory_gib=args.gpu_memory_gib,
    )


def _cmd_extract(args: argparse.Namespace) -> None:
    executor = _executor(args)
    checkpoints = _checkpoints(args)
    input_ids = _input_ids(args, checkpoints[0])
    store = ActivationStore(args.data_dir, args.suite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DuplicateWeightsWarning)
        try:
            table = extract(
                checkpoints,
                input_ids,
                store,
                dtype=args.dtype,
                device=args.device,
                batch_size=args.batch_size,
                attention_sink=args.attention_sink,
                shard=args.shard,
                progress=not args.no_progress,
                allow_duplicates=args.allow_duplicates,
                executor=executor,
            )
        finally:
            for warning in caught:
                print(f"warning: {warning.message}", file=sys.stderr)
    where = store.shard_path(*parse_shard(args.shard)) if args.shard else store.table_path
    bad = int((table.status != "ok").sum())
    print(f"{len(table)} rows in {where}" + (f" ({bad} not ok: see `status`)" if bad else ""))


def _cmd_import(args: argparse.Namespace) -> None:
    store = ActivationStore(args.data_dir, args.suite)
    table, skipped = import_raw(args.paths, store, dtype=args.dtype, progress=not args.no_progress)
    for path, reason in skipped:
        print(f"skipped malformed file {path}: {reason}", file=sys.stderr)
    print(f"{len(table)} rows in {store.table_path}; {len(skipped)} file(s) skipped")
    findings, _ = run_checks(table)
    for f in findings.itertuples(index=False):
        steps = ", ".join(map(str, f.steps))
        print(f"check: {f.check}: {f.model} steps {steps} ({f.statistic}): {f.detail}")
    if findings.empty:
        print("checks: no identical checkpoints and no unexplained jumps")


def _cmd_merge(args: argparse.Namespace) -> None:
    store = ActivationStore(args.data_dir, args.suite)
    inputs = args.tables or find_shards(store.dir)
    table = merge_tables(inputs, store.table_path)
    print(f"merged {len(inputs)} table(s): {len(table)} rows in {store.table_path}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m massive_activations.measurement.extract",
        description="Massive-activation statistics of checkpoint series into "
        "<data-dir>/<suite>/activations.parquet.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--suite", required=True, help="suite name: the folder under --data-dir")
        p.add_argument("--data-dir", default="data", help="data folder (default: data)")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    ex = sub.add_parser("extract", help="measure a checkpoint series (resumable, shardable)")
    common(ex)
    source = ex.add_mutually_exclusive_group(required=True)
    source.add_argument("--pythia", nargs="+", metavar="MODEL", help="e.g. pythia-70m")
    source.add_argument("--hub", nargs="+", metavar="REPO", help="hub repositories org/name")
    source.add_argument("--local", metavar="DIR", help="folder of <model>/step<N>/ checkpoints")
    source.add_argument(
        "--gguf", nargs="?", const="", metavar="FILE", help="a GGUF file (default: SmolLM2)"
    )
    ex.add_argument("--models", nargs="+", help="with --local: the models to take")
    ex.add_argument("--steps", default="all", help="all, log, every-K, or 0,1000,... (default all)")
    ex.add_argument("--revision-template", default="step{step}", help="with --hub")
    ex.add_argument("--cache-dir", help="Hugging Face cache folder (default: HF_HUB_CACHE)")
    inputs = ex.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--tokens", metavar="FILE.npy", help="token ids, 1-D stream or 2-D")
    inputs.add_argument("--text", metavar="FILE", help="UTF-8 text, tokenized without specials")
    ex.add_argument("--tokenizer", help="with --text: tokenizer (default: the first checkpoint)")
    ex.add_argument("--n-sequences", type=int, default=10, help="default 10")
    ex.add_argument("--seq-len", type=int, default=2048, help="default 2048")
    ex.add_argument("--dtype", default="float32", help="float32, bfloat16, float16")
    ex.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ex.add_argument("--batch-size", type=int, default=1)
    ex.add_argument("--attention-sink", action="store_true", help="also attn_first_pos")
    ex.add_argument("--shard", metavar="I/N", help="run shard I of N (0 <= I < N)")
    ex.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="also measure checkpoints whose weights equal another step's (flagged in "
        "checkpoints.parquet)",
    )
    ex.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="inprocess",
        help="inprocess (default) or ray: one Ray task per checkpoint",
    )
    ex.add_argument("--address", help="with ray: an existing cluster (default: local, 127.0.0.1)")
    ex.add_argument("--gpus-per-task", type=float, help="with ray: GPU share (default: derived)")
    ex.add_argument("--retries", type=int, default=2, help="with ray: retries of a failed unit")
    ex.add_argument("--num-cpus", type=int, help="with ray: CPUs of the local instance")
    ex.add_argument("--gpu-memory-gib", type=float, help="with ray: memory of one GPU")
    ex.set_defaults(run=_cmd_extract)

    im = sub.add_parser("import", help="import the paper's raw exp2_* files")
    common(im)
    im.add_argument("paths", nargs="+", help="exp2_* files or folders holding them")
    im.add_argument("--dtype", default="float16", help="dtype the files were measured in")
    im.set_defaults(run=_cmd_import)

    me = sub.add_parser("merge", help="merge shard tables into activations.parquet")
    common(me)
    me.add_argument(
        "tables", nargs="*", help="tables to merge (default: all shard tables of the suite)"
    )
    me.set_defaults(run=_cmd_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 on bad input, 1 when units failed)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ExtractionFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ValueError, CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
