"""The predictor's derived tables, computed once and read by the chapters.

The heavy statistics of chapter 5 (hundreds of block permutations per validation, the
repeated 80/20 splits, the power check's synthetic replicates) take far longer than a book
build may; :func:`write_predictor_tables` computes them once into the suite's data folder
(registered in ``reference/data_files.yml``), and the chapters read them with
:func:`massive_activations.registry.read`:

==============================  ===========================================================
``predictor.parquet``           :func:`~massive_activations.prediction.validation.evaluate`:
                                every (target, regressor, protocol), with per-regressor
                                block-null chance levels
``predictor_null.parquet``      :func:`~massive_activations.prediction.nulls.null_summary`:
                                the null of the best regressor
``predictor_splits.parquet``    :func:`~massive_activations.prediction.splits.repeated_splits`
``predictor_power.parquet``     :func:`~massive_activations.prediction.power.power_table`
``predictor_ceiling.parquet``   :func:`~massive_activations.prediction.ceiling.noise_ceiling`
==============================  ===========================================================

Each is computed for every combination of ``fits_used`` (``"identified"``, ``"all"``) and
``transforms`` (``"ours"``, ``"paper"``) asked for, concatenated (columns ``fits_used`` and
``transforms`` tell them apart); a target whose transform is the same under both choices
(``A``, ``K``) is computed once and its rows copied under the other label (the seeds do not
depend on the label, so the numbers would be the same).  :func:`write_predictor_tables`
writes each table as soon as it is done and skips the tables already present and current
(unless ``force``): each table records in its Parquet file (``attrs["inputs_digest"]``,
:func:`predictor_digest`) the digest of the fits and settings it was computed from, and a
table of other fits (a refit of chapter 4), of other settings, without the record, or without
a column the registry requires (an older version) is recomputed, so the chapter's numbers
always derive from the fits it shows next to them; an interrupted run resumes; inside a table, each (fits used,
transforms) part waits in ``.predictor-parts/`` beside the tables (keyed by a digest of the
fits and every setting) until the whole table is written, so even the largest table resumes
part by part (on the 188 layers of the paper's release one part of ``predictor.parquet`` is
about 20 minutes of 2-core CPU); the null summary is derived from
``predictor.parquet`` without recomputing it.  :func:`load_predictor_tables` is what a
chapter calls: the tables, computed only where missing (or all, with ``recompute``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from massive_activations import provenance, registry
from massive_activations.prediction.ceiling import noise_ceiling
from massive_activations.prediction.estimators import MODEL_TYPES
from massive_activations.prediction.nulls import null_summary
from massive_activations.prediction.power import power_table
from massive_activations.prediction.splits import repeated_splits
from massive_activations.prediction.transforms import TARGETS, scale_name
from massive_activations.prediction.validation import PROTOCOLS, evaluate

__all__ = [
    "PREDICTOR_FILES",
    "load_predictor_tables",
    "predictor_digest",
    "predictor_tables",
    "write_predictor_tables",
]

#: Folder (beside the tables) of the parts of a table being computed
#: (:func:`write_predictor_tables`); removed once the table is written.
CHECKPOINTS = ".predictor-parts"

#: The derived tables, in the order they are computed.
PREDICTOR_FILES = (
    "predictor.parquet",
    "predictor_null.parquet",
    "predictor_splits.parquet",
    "predictor_power.parquet",
    "predictor_ceiling.parquet",
)


def predictor_tables(
    fits: pd.DataFrame,
    *,
    which: Sequence[str] = PREDICTOR_FILES,
    results: pd.DataFrame | None = None,
    architectures: Mapping | None = None,
    groups: Mapping | None = None,
    targets: Sequence[str] = TARGETS,
    model_types: Sequence[str] = ("mean", *MODEL_TYPES),
    protocols: Sequence[str] = PROTOCOLS,
    fits_used: Sequence[str] = ("identified", "all"),
    transforms: Sequence[str] = ("ours", "paper"),
    hypothesis: str = "eq9",
    procedure: str = "ours",
    seed: int = 0,
    n_permutations: int | Mapping[str, int] = 200,
    n_repeats: int = 20,
    n_replicates: int = 20,
    power_permutations: int = 200,
    power_protocols: Sequence[str] = ("paper_split",),
    power_noise: float = 0.05,
    grids: Mapping | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    checkpoints: str | Path | None = None,
) -> dict[str, pd.DataFrame]:
    """Compute the derived tables named in ``which`` (:data:`PREDICTOR_FILES`).

    Parameters
    ----------
    fits : pandas.DataFrame
        The suite's fits table.
    which : sequence of str
        Tables to compute.
    results : pandas.DataFrame, optional
        An existing ``predictor.parquet`` table: the null summary is derived from it.
    architectures, groups, hypothesis, procedure
        See :func:`~massive_activations.prediction.data.target_data`.
    targets, model_types, protocols
        What :func:`~massive_activations.prediction.validation.evaluate` runs (the splits
        use ``targets`` and ``model_types``, the power check the regressors among them).
    fits_used, transforms : sequence of str
        The combinations computed: ``"identified"`` / ``"all"`` fits, ``"ours"`` /
        ``"paper"`` transforms.
    seed, n_permutations, n_repeats, n_replicates, power_permutations
        Seed; block permutations per validation (or ``{protocol: n}``); repeated splits;
        power replicates and the permutations of each replicate's null.
    power_protocols : sequence of str
        Protocols whose power is checked (the ledger's ``paper_split`` by default).
    power_noise : float
        Noise of the power check's synthetic target
        (:func:`~massive_activations.prediction.power.power_check`).
    grids : mapping, optional
        Hyperparameter grids replacing the defaults.
    n_jobs : int
        Parallel processes (the tables do not depend on it).
    progress : bool
        Show tqdm progress bars.
    checkpoints : path, optional
        A folder where each (table, fits used, transforms) part is written as soon as it is
        computed, under a name holding a digest of the inputs and every setting, and read
        back instead of recomputed: an interrupted run resumes part by part (on 188 layers
        one part of ``predictor.parquet`` is about 20 minutes of CPU).

    Returns
    -------
    dict
        ``{file name: table}`` for each name in ``which``.
    """
    unknown = [w for w in which if w not in PREDICTOR_FILES]
    if unknown:
        raise ValueError(f"Unknown tables {unknown}; choose among {PREDICTOR_FILES}.")
    combos = [(u, t) for u in fits_used for t in transforms]
    common = dict(
        hypothesis=hypothesis,
        procedure=procedure,
        architectures=architectures,
        groups=groups,
    )
    out: dict[str, pd.DataFrame] = {}
    digest = predictor_digest(
        fits, targets=targets, **common, model_types=model_types, protocols=protocols,
        seed=seed, n_permutations=n_permutations, n_repeats=n_repeats,
        n_replicates=n_replicates, power_permutations=power_permutations,
        power_protocols=power_protocols, power_noise=power_noise, grids=grids,
    )  # fmt: skip

    def each(fn, **kw):
        frames, done = [], {}
        for u, t in combos:
            # a target whose transform is the same under another choice already computed
            # (A and K: ours and the paper's agree) is copied, relabelled: same seeds, same
            # numbers
            reuse = {
                x: done[(u, x, scale_name(x, t))]
                for x in targets
                if (u, x, scale_name(x, t)) in done
            }
            todo = [x for x in targets if x not in reuse]
            if todo:
                part = None
                if checkpoints is not None:
                    name = f"{fn.__name__}-{u}-{t}-{'_'.join(todo)}-{digest}.parquet"
                    part = Path(checkpoints) / name
                if part is not None and part.is_file():
                    table = pd.read_parquet(part)
                else:
                    table = fn(
                        fits, targets=todo, identified_only=u == "identified", transforms=t,
                        **common, **kw,
                    )  # fmt: skip
                    if part is not None:
                        part.parent.mkdir(parents=True, exist_ok=True)
                        with provenance.paused():  # transient: not a data file of the book
                            registry.atomic_write(part, lambda tmp, tb=table: tb.to_parquet(tmp))
                frames.append(table)
                for x in todo:
                    done[(u, x, scale_name(x, t))] = table[table["target"] == x]
            frames += [part.assign(transforms=t) for part in reuse.values()]
        return pd.concat(frames, ignore_index=True)

    if "predictor.parquet" in which or ("predictor_null.parquet" in which and results is None):
        results = each(
            evaluate,
            model_types=model_types,
            protocols=protocols,
            seed=seed,
            n_permutations=n_permutations,
            grids=grids,
            n_jobs=n_jobs,
            progress=progress,
        )
        if "predictor.parquet" in which:
            out["predictor.parquet"] = results
    if "predictor_null.parquet" in which:
        out["predictor_null.parquet"] = null_summary(results)
    if "predictor_splits.parquet" in which:
        out["predictor_splits.parquet"] = each(
            repeated_splits,
            model_types=model_types,
            n_repeats=n_repeats,
            seed=seed,
            grids=grids,
            n_jobs=n_jobs,
            progress=progress,
        )
    if "predictor_power.parquet" in which:
        out["predictor_power.parquet"] = each(
            power_table,
            protocols=power_protocols,
            model_types=[m for m in model_types if m != "mean"],
            n_replicates=n_replicates,
            n_permutations=power_permutations,
            noise=power_noise,
            seed=seed,
            grids=grids,
            n_jobs=n_jobs,
            progress=progress,
        )
    if "predictor_ceiling.parquet" in which:
        out["predictor_ceiling.parquet"] = each(noise_ceiling)
    for table in out.values():
        table.attrs["inputs_digest"] = digest
    return out


#: :func:`predictor_tables`' own signature (its defaults), whatever later replaces the name.
_SIGNATURE = inspect.signature(predictor_tables)

#: The settings of :func:`predictor_tables` that shape its numbers (with ``targets`` and the
#: data arguments ``hypothesis, procedure, architectures, groups``).
_SHAPING = (
    "model_types", "protocols", "seed", "n_permutations", "n_repeats", "n_replicates",
    "power_permutations", "power_protocols", "power_noise", "grids",
)  # fmt: skip


def predictor_digest(fits: pd.DataFrame, **settings) -> str:
    """The digest of ``fits`` and every setting that shapes :func:`predictor_tables`' numbers.

    ``settings``: keyword arguments of :func:`predictor_tables` (its defaults fill the rest;
    ``which``, ``results``, ``n_jobs``, ``progress`` and ``checkpoints`` are ignored).  The
    key of each resumable part and the record each written table carries.
    """
    call = {
        k: p.default
        for k, p in _SIGNATURE.parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(settings) - set(call))
    if unknown:
        raise TypeError(f"predictor_tables has no argument(s) {unknown}; see its docstring.")
    call.update(settings)
    common = {k: call[k] for k in ("hypothesis", "procedure", "architectures", "groups")}
    return _digest(fits, call["targets"], common, _settings(**{k: call[k] for k in _SHAPING}))


def _settings(**settings) -> dict:
    """The settings that shape a table, as plain JSON-able values (for :func:`_digest`)."""
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in settings.items()}


def _digest(fits: pd.DataFrame, targets, common: dict, settings: dict) -> str:
    """A short digest of the fits table and every setting: a checkpoint's key."""
    h = hashlib.sha256()
    # object columns may hold arrays (unhashable): a text that depends on their values only
    plain = fits.copy()
    for c in [c for c in plain.columns if plain[c].dtype.kind == "O"]:
        plain[c] = plain[c].map(_value_text)
    h.update(pd.util.hash_pandas_object(plain, index=False).to_numpy().tobytes())
    h.update(",".join(map(str, fits.columns)).encode())
    keyed = {"targets": list(targets), **common, **settings}
    h.update(json.dumps(keyed, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _value_text(v) -> str:
    """A cell as text that depends on its value only, never on where it sits in memory.

    An array of objects (``param_names``) is a list of pointers: its bytes differ from one
    process to the next, so it is written out as the list of its values.
    """
    if isinstance(v, np.ndarray | list | tuple):
        a = np.asarray(v)
        if a.dtype.kind == "O":
            return repr(a.tolist())
        return f"{a.dtype.str}{a.shape}:{a.tobytes().hex()}"
    return repr(v)


def write_predictor_tables(
    fits: pd.DataFrame, root: str | Path, suite: str, *, force: bool = False, **settings
) -> dict[str, Path]:
    """Compute and write each table of :data:`PREDICTOR_FILES` that is missing or stale (all
    with ``force``), atomically and one at a time, so an interrupted run resumes.

    ``settings``: keyword arguments of :func:`predictor_tables` (not ``results``; ``which``
    limits the tables).  Returns ``{file name: path}`` of every table, written now or before.
    """
    paths = {}
    which = settings.pop("which", PREDICTOR_FILES)
    digest = predictor_digest(fits, **settings)
    for name in which:
        path = registry.path(name, root, suite)
        if path.is_file() and not force and _current(path, name, digest):
            paths[name] = path
            continue
        results = None
        if name == "predictor_null.parquet" and "predictor.parquet" in paths:
            results = registry.read("predictor.parquet", root, suite)
        parts = path.parent / CHECKPOINTS
        table = predictor_tables(
            fits, which=(name,), results=results, checkpoints=parts, **settings
        )[name]
        paths[name] = registry.write(table, name, root, suite)
        # the whole table is written: its parts are no longer needed
        for part in parts.glob("*.parquet") if parts.is_dir() else ():
            part.unlink()
        if parts.is_dir() and not any(parts.iterdir()):
            parts.rmdir()
    return paths


def _current(path: Path, name: str, digest: str) -> bool:
    """Whether the table at ``path`` has every column the registry requires of ``name`` and
    was computed from the inputs of ``digest`` (:func:`predictor_digest`)."""
    schema = pq.read_schema(path)
    attrs = json.loads((schema.metadata or {}).get(b"PANDAS_ATTRS", b"{}"))
    have = set(schema.names)
    columns = all(c in have for c in registry.required_columns(name))
    return columns and attrs.get("inputs_digest") == digest


def load_predictor_tables(
    fits: pd.DataFrame,
    root: str | Path,
    suite: str,
    *,
    recompute: bool = False,
    progress: bool = False,
    **settings,
) -> dict[str, pd.DataFrame]:
    """The predictor's derived tables of ``suite``: read, computed first where missing.

    Parameters
    ----------
    fits : pandas.DataFrame
        The suite's fits table (used only for tables that must be computed).
    root : path
        The data folder (``<root>/<suite>/<table>``).
    suite : str
    recompute : bool
        Compute and write every table again (a book build otherwise reads the committed
        ones where they were computed from these fits with these settings, and computes the
        others).
    progress : bool
        Show progress bars while computing.
    settings
        Keyword arguments of :func:`predictor_tables` (``which`` limits the tables).

    Returns
    -------
    dict
        ``{file name: table}``.
    """
    paths = write_predictor_tables(
        fits, root, suite, force=recompute, progress=progress, **settings
    )
    return {name: registry.read(name, root, suite) for name in paths}
