"""The data card: what every file and column of a suite's data folder holds, and its origin.

:data:`COLUMNS` is the column dictionary: for each table of ``<data>/<suite>/`` (what
``make data`` writes, and the derived tables the chapters add), each column's unit and
meaning.  Families of columns are documented once by a pattern: ``<param>`` stands for any
parameter name of :data:`massive_activations.fitting.fit_all.PARAM_NAMES` (``<param>_stderr``
matches ``A_stderr``, ``lam_stderr``, ...).  :data:`FILES` says what each file is.

:func:`data_card_page` writes the book's data-card page (``book/data_card.md``, generated
while the book is built, as the status page is) for the data folders the build used: per
folder, each file with its rows, columns, size and sha256 and each table's columns; how it
was produced (corpus sources, seeds, suite configuration, device, threads, git commit,
package versions, all from ``manifest.json``); the licences; and the regeneration drift
(``drift.json``, when it has been measured).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "COLUMNS",
    "FILES",
    "data_card_page",
    "describe",
    "file_summary",
    "undocumented",
]

_RATIO = "1 (ratio top1 / median)"
_ACT = "|activation| (residual-stream units)"
_PARAM = "units of the parameter"

#: What each file of a data folder holds (files without an entry are listed as "other").
FILES: dict[str, str] = {
    "activations.parquet": "activation statistics of every checkpoint, layer and sequence",
    "training_log.parquet": "loss, learning rate and gradient norm of every training step",
    "architectures.parquet": "one row per model: sizes, parameter counts, training length",
    "fits.parquet": "fits of every layer's trajectory (chapter 4)",
    "features.parquet": "paper Table 4's architecture features of every layer",
    "predictor.parquet": "cross-validated predictions of Eq. 9's parameters (chapter 5)",
    "importance.parquet": "permutation importance of each feature for each target (chapter 5)",
    "ledger.csv": "the claims ledger: each claim of the paper, our value and the verdict",
    "eval_tokens.npy": "the evaluation sequences (token ids, sequences x positions)",
    "settings.json": "the measurement settings shared by all checkpoints",
    "manifest.json": "configuration, seeds, corpus sources, versions and file digests",
    "timings.json": "wall times of the build's stages (differs between identical runs)",
    "drift.json": "differences between two regenerations of the folder",
}

#: Column dictionary: ``{file: {column or pattern: (unit, meaning)}}``.
COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "activations.parquet": {
        "suite": ("label", "suite name (the data folder's name)"),
        "model": ("label", "model name; ours are named L<layers>-d<width>-h<heads>"),
        "step": (
            "steps",
            "training step of the checkpoint (0: initialisation; -1: a "
            "released model with no step)",
        ),
        "layer": ("index", "decoder layer, counted from 1 (first) to n_layers (last)"),
        "sequence": ("index", "evaluation sequence, counted from 0"),
        "top1": (
            _ACT,
            "largest absolute value of the layer's output over all positions "
            "and channels of the sequence",
        ),
        "top2": (_ACT, "second largest absolute value"),
        "top3": (_ACT, "third largest absolute value"),
        "median": (_ACT, "lower median of the absolute values (paper Eqs. 1-8)"),
        "top1_position": (
            "tokens",
            "position of top1 in the sequence (0: first token); -1 when status is not ok",
        ),
        "top1_channel": ("index", "residual-stream channel of top1; -1 when status is not ok"),
        "top1_token": ("token id", "input token at top1's position; -1 when status is not ok"),
        "dtype": ("label", "precision the checkpoint was run in (float32, bfloat16, float16)"),
        "status": (
            "label",
            "ok, overflow (the output holds +-inf) or nonfinite (NaN); "
            "statistics are NaN unless ok",
        ),
        "attn_first_pos": (
            "1 (attention weight)",
            "attention that queries put on position 0, averaged over heads and queries",
        ),
    },
    "training_log.parquet": {
        "model": ("label", "model name"),
        "step": ("steps", "optimiser step (0: before training, validation loss only)"),
        "train_loss": ("nats", "training cross-entropy per token of the step's batch"),
        "lr": ("1 (learning rate)", "learning rate used at the step (warm-up then cosine)"),
        "grad_norm": ("1 (L2 norm)", "global gradient norm before clipping"),
        "val_loss": ("nats", "held-out cross-entropy per token; NaN between checkpoints"),
    },
    "architectures.parquet": {
        "model": ("label", "model name"),
        "n_layers": ("count", "decoder layers L"),
        "d_model": ("count", "residual-stream width d"),
        "n_heads": ("count", "attention heads H"),
        "d_head": ("count", "width of one head, d / H"),
        "d_ff": ("count", "MLP width"),
        "vocab_size": ("tokens", "tokenizer vocabulary size"),
        "params": ("count", "parameters, embeddings included"),
        "non_embedding_params": ("count", "parameters less the input and output embeddings"),
        "steps": ("steps", "training steps"),
        "checkpoints": ("count", "checkpoints measured"),
        "seq_len": ("tokens", "training sequence length"),
        "batch_size": ("sequences", "sequences per step"),
        "tokens": ("tokens", "training tokens, steps x seq_len x batch_size"),
        "lr": ("1 (learning rate)", "peak learning rate"),
        "final_train_loss": ("nats", "training loss of the last step"),
        "final_val_loss": ("nats", "validation loss of the last checkpoint"),
        "config_hash": ("label", "key of the training run (configuration digest) in the cache"),
    },
    "fits.parquet": {
        "suite": ("label", "suite name"),
        "model": ("label", "model name"),
        "layer": ("index", "decoder layer, from 1"),
        "n_layers": ("count", "decoder layers of the model"),
        "relative_depth": ("1 (ratio)", "layer / n_layers"),
        "quantity": (
            "label",
            "trajectory fitted: ratio (mean top1 / mean median, Eq. 8) "
            "or ratio_mean (mean of per-sequence ratios)",
        ),
        "hypothesis": ("label", "curve family: eq9, eq14, step1, step2"),
        "procedure": ("label", "fitting procedure: paper (the paper's) or ours"),
        "status": ("label", "ok or the reason the fit failed"),
        "message": ("text", "the optimiser's or the failure's message"),
        "n_points": ("count", "checkpoints in the fit window"),
        "window_start": ("steps", "first step of the fit window"),
        "t_max": ("steps", "last step of the trajectory"),
        "<param>": (
            "units of the parameter",
            "fitted value in original units (NaN when "
            "the hypothesis lacks it): A, K, A1, A2 as ratio top1 / median; lam, "
            "t0, zeta: 1; gam, b, w: 1/steps; tau0, tau: steps",
        ),
        "<param>_stderr": (_PARAM, "standard error from the covariance matrix"),
        "<param>_cov_lo": (_PARAM, "lower bound of the 95 % covariance interval"),
        "<param>_cov_hi": (_PARAM, "upper bound of the 95 % covariance interval"),
        "<param>_prof_lo": (_PARAM, "lower bound of the 95 % profile-likelihood interval"),
        "<param>_prof_hi": (_PARAM, "upper bound of the 95 % profile-likelihood interval"),
        "<param>_boot_lo": (_PARAM, "lower bound of the 95 % bootstrap interval (over sequences)"),
        "<param>_boot_hi": (_PARAM, "upper bound of the 95 % bootstrap interval"),
        "<param>_flags": (
            "labels",
            "identifiability flags separated by ';' (at_bound, "
            "no_stderr, imprecise, correlated:<other>, profile_open)",
        ),
        "<param>_identified": (
            "boolean",
            "whether the parameter counts as identified "
            "(no flag but correlated:...); null when not assessed",
        ),
        "t_peak": ("steps", "step of the curve's extremum (Eq. 13)"),
        "t_peak_delta_lo": ("steps", "lower bound of t_peak's delta-method interval"),
        "t_peak_delta_hi": ("steps", "upper bound of t_peak's delta-method interval"),
        "t_peak_boot_lo": ("steps", "lower bound of t_peak's bootstrap interval"),
        "t_peak_boot_hi": ("steps", "upper bound of t_peak's bootstrap interval"),
        "regime": ("label", "early_peak, log_rise, decay, inverted or undetermined"),
        "r2": ("1", "coefficient of determination over the fit window"),
        "r2_all": ("1", "R^2 over every checkpoint (the curve extrapolated before the window)"),
        "chisqr": ("1 (ratio^2)", "sum of squared (weighted) residuals"),
        "redchi": ("1 (ratio^2)", "chisqr / (n_points - parameters)"),
        "aic": ("1", "Akaike information criterion, n log(chisqr / n) + 2k"),
        "bic": ("1", "Bayesian information criterion, n log(chisqr / n) + k log n"),
        "nfev": ("count", "residual evaluations of the optimiser"),
        "n_boot": ("count", "bootstrap replicates attempted"),
        "n_boot_ok": ("count", "bootstrap replicates whose fit succeeded"),
        "corr_max": ("1 (correlation)", "largest absolute correlation between two parameters"),
        "corr_pair": ("label", "the two parameters of corr_max, as `a~b`"),
        "param_names": ("labels", "the hypothesis's parameter names, in order"),
        "correlation": ("1 (correlation)", "parameter correlation matrix, row-major, flattened"),
        "fit_steps": ("steps", "steps of the fitted points"),
        "residuals": (_RATIO, "data minus curve at fit_steps"),
    },
    "features.parquet": {
        "model": ("label", "model name"),
        "layer": ("index", "layer l, counted from 1"),
        "n_layers": ("count", "decoder layers L"),
        "d_model": ("count", "width d"),
        "n_heads": ("count", "attention heads H"),
        "d_ff": ("count", "MLP width"),
        "l_over_L": ("1 (ratio)", "l / L"),
        "l_over_L_sq": ("1 (ratio)", "(l / L)^2"),
        "l_over_L_cube": ("1 (ratio)", "(l / L)^3"),
        "l_over_L_sqrt": ("1 (ratio)", "sqrt(l / L)"),
        "H_over_d": ("1/channels", "H / d"),
        "dff_over_d": ("1 (ratio)", "d_ff / d"),
        "d_over_L": ("channels per layer", "d / L"),
        "H_over_L": ("heads per layer", "H / L"),
        "log_d": ("1 (log)", "natural logarithm of d"),
        "l_times_L": ("1 (layers^2)", "l * L"),
    },
    "predictor.parquet": {
        "target": ("label", "predicted parameter of Eq. 9 (A, lam, gam, t0, K)"),
        "model_type": (
            "label",
            "regressor: mean, Ridge, Lasso, RandomForest, GradientBoosting, XGBoost",
        ),
        "protocol": ("label", "validation: paper_split, paper_cv5 or lomo"),
        "r2": ("1", "R^2 on the transformed target scale"),
        "mae": ("transformed target units", "mean absolute error"),
        "rmse": ("transformed target units", "root mean squared error"),
        "chance_r2_mean": ("1", "mean R^2 of the runs on shuffled targets"),
        "chance_r2_q95": ("1", "95th percentile of R^2 on shuffled targets"),
        "p_value": ("1 (probability)", "permutation p-value of r2"),
        "n_train": ("layers", "training rows per outer fold (mean)"),
        "n_test": ("layers", "rows predicted out of fold"),
        "n_folds": ("count", "outer folds"),
        "n_models": ("count", "models among the usable layers"),
        "n_used": ("layers", "layers whose target is identified and finite"),
        "n_unidentified": ("layers", "layers left out: target not identified"),
        "n_missing": ("layers", "layers left out: fit failed or value missing"),
        "n_permutations": ("count", "shuffled-target runs"),
        "seed": ("label", "random seed"),
        "scale": ("label", "transform the metrics are computed on (slog1p, yeo-johnson)"),
        "params": ("JSON", "hyperparameters chosen in each outer fold"),
        "note": ("text", "why a row is empty (too few layers or models), else empty"),
        "fits_used": (
            "label",
            "identified (only layers whose fit identified the target) or all (every finite "
            "fit, as the paper)",
        ),
    },
}

COLUMNS["importance.parquet"] = {
    "target": ("label", "predicted parameter of Eq. 9"),
    "model_type": ("label", "the regressor that validated best for the target"),
    "protocol": ("label", "the validation whose test folds measured the importance"),
    "fits_used": ("label", "identified or all: which fits the predictor learned from"),
    "feature": ("label", "a feature of paper Table 4 (features.parquet)"),
    "importance": (
        "(transformed target units)^2",
        "increase of the test mean squared error when the feature is shuffled",
    ),
    "importance_std": ("(transformed target units)^2", "standard deviation over shuffles"),
    "rank": ("rank", "1 = most important"),
}
COLUMNS["ledger.csv"] = {
    "key": ("label", "claim identifier (reference file, key claims)"),
    "claim": ("text", "the paper's claim"),
    "source": ("text", "where the paper makes it"),
    "paper_value": ("text", "the paper's value"),
    "our_value": ("text", "our value on this data"),
    "uncertainty": ("text", "uncertainty of our value"),
    "test": ("text", "how the claim was tested"),
    "verdict": ("label", "reproduced, not reproduced or not testable on this data"),
    "reading": ("text", "how to read the verdict"),
    "chapter": ("label", "chapter that shows the evidence"),
}

_PATTERN = re.compile(r"^<param>(?P<suffix>.*)$")


def _param_names() -> tuple[str, ...]:
    from massive_activations.fitting.fit_all import PARAM_NAMES

    return PARAM_NAMES


def _entry(file: str, column: str) -> tuple[str, tuple[str, str]] | None:
    """``(key, (unit, meaning))``: the dictionary key (the name or a pattern) of a column."""
    entries = COLUMNS.get(file, {})
    if column in entries:
        return column, entries[column]
    for key, value in entries.items():
        match = _PATTERN.match(key)
        if not match:
            continue
        suffix = match["suffix"]
        if column.endswith(suffix) and column[: len(column) - len(suffix)] in _param_names():
            return key, value
    return None


def describe(file: str, column: str) -> tuple[str, str] | None:
    """``(unit, meaning)`` of a column of a data file, or None when undocumented.

    Exact names are looked up first, then the ``<param>...`` patterns.
    """
    found = _entry(file, column)
    return None if found is None else found[1]


def undocumented(file: str, columns: Iterable[str]) -> list[str]:
    """The columns of ``file`` that :data:`COLUMNS` does not describe."""
    return [c for c in columns if describe(file, c) is None]


def file_summary(path: str | Path) -> dict:
    """Rows, columns (name and type), size and sha256 of a data file.

    Parquet files are summarised from their footer (no data read), CSV files by reading
    them, ``.npy`` from the header (its shape), JSON files by their top-level keys.
    """
    from massive_activations.provenance import sha256_file

    path = Path(path)
    out: dict = {
        "name": path.name,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "rows": None,
        "columns": [],
    }
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        out["rows"] = meta.num_rows
        schema = meta.schema.to_arrow_schema()
        out["columns"] = [(f.name, str(f.type)) for f in schema]
    elif path.suffix == ".csv":
        import pandas as pd

        table = pd.read_csv(path)
        out["rows"] = len(table)
        out["columns"] = [(str(c), str(t)) for c, t in table.dtypes.items()]
    elif path.suffix == ".npy":
        import numpy as np

        arr = np.load(path, mmap_mode="r")
        out["rows"] = int(arr.shape[0]) if arr.ndim else 1
        out["shape"] = tuple(int(s) for s in arr.shape)
        out["dtype"] = str(arr.dtype)
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            out["keys"] = sorted(data)
    return out


def _flat(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return " ".join(text.split())


def _cell(value) -> str:
    """Plain text safe inside a MyST table cell (no markup, no math, no substitution)."""
    text = _flat(value).replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")
    return text.replace("$", "\\$").replace("{{", "{ {").replace("`", "'") or " "


def _code(value) -> str:
    """Inline code safe inside a MyST table cell."""
    text = _flat(value).replace("`", "'").replace("|", "\\|")
    return f"`{text}`" if text else " "


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _records(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _keyed(value) -> bool:
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())
    )


def _free_table(data) -> list[str]:
    """A free-form JSON value (``drift.json``) as markdown tables.

    A list of objects is one table (a column per key); an object of objects one table (a
    row per key); any other object a key/value table, followed by a table for each of its
    values that is a list of objects or an object of objects.
    """
    if _records(data):
        cols = list(dict.fromkeys(k for r in data for k in r))
        return _table([_cell(c) for c in cols], ([_cell(r.get(c, "")) for c in cols] for r in data))
    if _keyed(data):
        cols = list(dict.fromkeys(k for v in data.values() for k in v))
        return _table(
            ["key", *(_cell(c) for c in cols)],
            ([_cell(k), *(_cell(v.get(c, "")) for c in cols)] for k, v in data.items()),
        )
    if isinstance(data, dict):
        nested = {k: v for k, v in data.items() if _records(v) or _keyed(v)}
        flat = {k: v for k, v in data.items() if k not in nested}
        lines = (
            _table(["key", "value"], ([_cell(k), _cell(v)] for k, v in flat.items()))
            if flat
            else []
        )
        for key, value in nested.items():
            lines += [f"{_code(key)}:", "", *_free_table(value)]
        return lines
    return _table(["value"], [[_cell(data)]])


def _folder_section(folder: Path, label: str) -> list[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    name = folder.name
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    summaries = [file_summary(p) for p in files]
    derived = manifest.get("derived") or {}
    lines = [f"## Data folder `{label}`", ""]
    lines += [
        f"Suite `{name}`, written by `make data` (`python -m massive_activations.suite.make_data "
        f"--suite {name}`) at git commit `{manifest.get('git_commit', 'unknown')}`; the "
        "chapters add the derived tables"
        + (
            " ("
            + ", ".join(f"`{k}` by `{v.get('written_by', '?')}`" for k, v in derived.items())
            + ")"
            if derived
            else ""
        )
        + ". The sha256 of every file is recorded in its `manifest.json` and checked by "
        "`tests/test_manifest.py`.",
        "",
        f"### Files of `{name}`",
        "",
    ]
    rows = []
    for s in summaries:
        if s["columns"]:
            shape = f"{len(s['columns'])} columns"
        elif "shape" in s:
            shape = f"shape {s['shape']}, {s['dtype']}"
        elif "keys" in s:
            shape = f"{len(s['keys'])} keys"
        else:
            shape = " "
        rows.append(
            [
                f"`{s['name']}`",
                f"{s['rows']:,}" if s["rows"] is not None else " ",
                shape,
                f"{s['bytes']:,}",
                f"`{s['sha256']}`",
                _cell(FILES.get(s["name"], "other")),
            ]
        )
    lines += _table(["file", "rows", "columns", "bytes", "sha256", "holds"], rows)
    for s in summaries:
        if not s["columns"]:
            continue
        lines += [f"### Columns of `{name}/{s['name']}`", ""]
        table_rows, shown = [], set()
        for col, dtype in s["columns"]:
            key, (unit, meaning) = _entry(s["name"], col) or (col, ("?", "undocumented"))
            if key in shown:  # a pattern, shown once
                continue
            shown.add(key)
            table_rows.append([_code(key), _code(dtype), _cell(unit), _cell(meaning)])
        lines += _table(["column", "type", "unit", "meaning"], table_rows)
        if any(k.startswith("<param>") for k in shown):
            params = ", ".join(f"`{p}`" for p in _param_names())
            lines += [f"`<param>` stands for each of {params} (one column each).", ""]
    lines += _produced(manifest, name)
    lines += _licence(manifest, name)
    lines += _drift(folder, name)
    return lines


def _produced(manifest: dict, name: str) -> list[str]:
    corpus = manifest.get("corpus") or {}
    lines = [f"### How `{name}` was produced", ""]
    lines += [
        f"- Corpus `{corpus.get('name', '?')}`: {corpus.get('documents', '?')} documents, "
        f"{corpus.get('chars', 0):,} characters, sha256 `{corpus.get('sha256', '?')}`.",
        f"- Seeds: {', '.join(f'{k} {v}' for k, v in (manifest.get('seeds') or {}).items())}.",
        f"- Device `{manifest.get('device', '?')}`, "
        + (
            "torch threads per run below"
            if isinstance(manifest.get("run_threads"), dict)
            else f"{manifest.get('torch_threads', '?')} torch threads"
        )
        + f" (results depend on them through floating-point rounding), Python "
        f"{manifest.get('python', '?')}.",
        f"- Git commit `{manifest.get('git_commit', 'unknown')}`.",
    ]
    if isinstance(manifest.get("run_threads"), dict):
        per_run = ", ".join(f"`{k}` {v}" for k, v in manifest["run_threads"].items())
        lines.append(f"- Torch threads of each model's training run: {per_run}.")
    lines.append("")
    sources = corpus.get("sources") or []
    if sources:
        lines += ["Corpus sources:", ""]
        lines += _table(
            ["package", "version", "licence", "sha256"],
            (
                [_code(s.get("name", "?")), _cell(s.get("version", "?")),
                 _cell(s.get("licence", "?")),
                 _code(s["sha256"]) if s.get("sha256") else "(a Python package, no archive)"]
                for s in sources
            ),
        )  # fmt: skip
    packages = manifest.get("packages") or {}
    if packages:
        lines += ["Package versions:", ""]
        lines += _table(["package", "version"], ([_cell(k), _cell(v)] for k, v in packages.items()))
    if manifest.get("suite"):
        lines += ["Suite configuration (`manifest.json`, key `suite`):", "", "```json"]
        lines += [json.dumps(manifest["suite"], indent=1, sort_keys=True), "```", ""]
    return lines


def _licence(manifest: dict, name: str) -> list[str]:
    lines = [f"### Licence of `{name}`", ""]
    lines += [
        "- Code, and the tables it computes: MIT (the repository's `LICENSE` file).",
    ]
    for s in (manifest.get("corpus") or {}).get("sources") or []:
        lines.append(
            f"- Corpus text from `{_cell(s.get('name', '?'))}` "
            f"{_cell(s.get('version', ''))}: {_cell(s.get('licence', 'not recorded'))}."
        )
    return [*lines, ""]


def _drift(folder: Path, name: str) -> list[str]:
    lines = [f"### Regeneration drift of `{name}`", ""]
    path = folder / "drift.json"
    if not path.is_file():
        return [
            *lines,
            f"Not measured: `{name}/drift.json` does not exist (it would compare two "
            "regenerations of this folder).",
            "",
        ]
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [*lines, f"`{name}/drift.json` is not valid JSON ({_cell(str(exc))}).", ""]
    return [*lines, f"From `{name}/drift.json`:", "", *_free_table(data)]


def data_card_page(folders: Sequence[str | Path], *, root: str | Path | None = None) -> str:
    """Markdown of the data-card page for the data folders a build used.

    Parameters
    ----------
    folders : sequence of path
        Candidate data folders (``<data_dir>/<suite>``); those holding a ``manifest.json``
        get a section, the others are named as not found.
    root : path, optional
        Folder the paths are shown relative to (the repository root).

    Returns
    -------
    str
        The page, valid MyST (one H1, then H2 per folder and H3 sections).
    """
    root = Path(root) if root is not None else None

    def label(p: Path) -> str:
        if root is not None:
            try:
                return p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                pass
        return p.as_posix()

    seen: list[Path] = []
    for f in map(Path, folders):
        if f.resolve() not in {s.resolve() for s in seen}:
            seen.append(f)
    found = [f for f in seen if (f / "manifest.json").is_file()]
    missing = [f for f in seen if f not in found]
    lines = [
        "# Data card",
        "",
        "Generated by `python -m massive_activations.book` while this book was built, from "
        "the data folders its notebooks read: every file with its size and sha256, every "
        "column with its unit and meaning (the dictionary is `massive_activations.book.data_card`), "
        "and how the data were produced. Units: `|activation|` is the absolute value of a "
        "residual-stream element (the model's own units); losses are in nats per token; "
        "`steps` are optimiser steps.",
        "",
    ]
    if not found:
        lines += [
            "No data folder with a `manifest.json` was used by this build"
            + (": looked for " + ", ".join(f"`{label(f)}`" for f in missing) if missing else "")
            + ". Run `make data` (or `python -m massive_activations.suite.make_data --suite NAME`) to "
            "write one.",
            "",
        ]
    elif missing:
        lines += [
            "Folders named by the notebooks' parameters that hold no `manifest.json` (not "
            "described here): " + ", ".join(f"`{label(f)}`" for f in missing) + ".",
            "",
        ]
    for folder in found:
        lines += _folder_section(folder, label(folder))
    return "\n".join(lines).rstrip() + "\n"
