"""Power of the predictor's protocols: can they detect an architecture-driven target at the
real data's size?

A "not predictable" verdict means something only if the protocol would have found a target
that *is* predictable from architecture, on data of the same size and shape.  With a few
models, a test set of a handful of layers and a null that keeps model identity
(:mod:`~massive_activations.prediction.nulls`), it may not: then "not predictable" is what
the protocol says of every target, and no evidence about the paper's claim.

:func:`power_check` replaces the real target by the synthetic architecture-driven one of
:mod:`~massive_activations.prediction.synthetic` (each target a monotone function of
``z(H/d) + z(d_ff/d)`` plus per-layer noise) on the real data's layout: the same models,
the same used layers of each (so the same number of samples, models and layer counts) and the
same architecture groups.  ``design="random"`` (default) gives each architecture group random
widths, heads and MLP widths (as :func:`~massive_activations.prediction.synthetic.architecture_fits`
does; seed replicates keep sharing one), ``design="real"`` keeps the real features (on the
suites ``d_ff / d`` is constant, so only ``H / d`` then carries the signal).  Each replicate
runs the whole protocol (the regressors tuned by their inner CV, split seed ``seed + k``)
and its block null with ``n_permutations`` permutations; it *detects* the target when the
best regressor's R^2 exceeds the 95th percentile of the null of the maximum over regressors,
the rule the claims ledger applies to the real data.  ``power`` is the share of replicates
that detect, with a Clopper-Pearson 95 % interval; the ledger calls a "not predictable"
reproduced only with power >= 0.8.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from massive_activations.parallel import run_jobs
from massive_activations.prediction.data import TargetData, target_data
from massive_activations.prediction.estimators import MODEL_TYPES
from massive_activations.prediction.features import layer_features
from massive_activations.prediction.nulls import max_null, permutations
from massive_activations.prediction.synthetic import (
    architecture_signal,
    random_architecture,
    synthetic_targets,
)
from massive_activations.prediction.transforms import TARGETS
from massive_activations.prediction.validation import PROTOCOLS, cross_validate, infeasible

__all__ = ["POWER_COLUMNS", "power_check", "power_table", "synthetic_like"]

#: Columns of :func:`power_table` (and the keys of :func:`power_check`), in order.
POWER_COLUMNS = (
    "fits_used",
    "transforms",
    "target",
    "protocol",
    "design",
    "noise",
    "power",
    "power_lo",
    "power_hi",
    "n_detected",
    "n_replicates",
    "best_r2_median",
    "null_q95_median",
    "n_used",
    "n_models",
    "n_architectures",
    "model_types",
    "null_scheme",
    "n_permutations",
    "seed",
    "note",
)

_DESIGNS = ("random", "real")


def synthetic_like(
    data: TargetData, rng: np.random.Generator, *, noise: float = 0.05, design: str = "random"
) -> TargetData:
    """A synthetic architecture-driven target on the layout of ``data`` (module docstring).

    The rows keep ``data``'s order, models, layers and architecture groups; ``design``
    chooses random architectures per group or the real features.
    """
    if design not in _DESIGNS:
        raise ValueError(f"Unknown design {design!r}; choose one of {_DESIGNS}.")
    feats = data.features
    if design == "random":
        n_layers = (feats["l_times_L"] / feats["layer"]).round().astype(int)
        specs = {}
        for g in sorted(set(data.groups)):
            L = int(n_layers[feats["architecture"] == g].iloc[0])
            specs[g] = random_architecture(rng, L)
        parts = []
        for (m, g), idx in feats.groupby(["model", "architecture"], sort=True).groups.items():
            spec = {**specs[g], "n_layers": int(n_layers[idx[0]]), "name": m}
            f = layer_features(spec, feats.loc[idx, "layer"].to_numpy())
            parts.append(f.set_index(idx).assign(architecture=g))
        feats = pd.concat(parts).loc[data.features.index][list(data.features.columns)]
    s = architecture_signal(feats, noise, rng)
    y = synthetic_targets(s)[data.target]
    return TargetData(
        data.target, feats.reset_index(drop=True), y, dict(data.counts), data.transforms
    )


def _replicate(
    data, k, *, protocol, model_types, n_permutations, noise, design, null, seed, grids, early_stop
):
    """One replicate: (best R^2, 95th percentile of its null or NaN when stopped early)."""
    rng = np.random.default_rng([seed, k])
    syn = synthetic_like(data, rng, noise=noise, design=design)
    runs = [
        cross_validate(syn, m, protocol, seed=seed + k, null=null, grids=grids) for m in model_types
    ]
    r2 = np.array([r.metrics["r2"] for r in runs], float)
    best = float(np.nanmax(r2)) if np.isfinite(r2).any() else np.nan
    # the same permutations as cross_validate(..., n_permutations) would draw
    perms = permutations(syn.models, syn.features["layer"], n_permutations, seed + k, null)
    # once this many maxima reach best, the 95th percentile of all n cannot fall below it
    # (np.quantile interpolates between sorted values j and j + 1, j = floor(0.95 (n - 1)))
    enough = n_permutations - math.floor(0.95 * (n_permutations - 1))
    maxima, reached = [], 0
    for perm in perms:
        m = max_null([[r.permuted_r2(syn.y[perm])] for r in runs])[0]
        maxima.append(m)
        reached += bool(m >= best)
        if early_stop and reached >= enough:
            return best, np.nan
    return best, float(np.nanquantile(maxima, 0.95))


def power_check(
    data: TargetData,
    *,
    protocol: str = "paper_split",
    model_types: Sequence[str] = MODEL_TYPES,
    n_replicates: int = 20,
    n_permutations: int = 200,
    noise: float = 0.05,
    design: str = "random",
    null: str = "blocks",
    seed: int = 0,
    grids: Mapping | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    fits_used: str | None = None,
    early_stop: bool = True,
) -> dict:
    """The power of ``protocol`` to detect an architecture-driven target on ``data``'s layout.

    Parameters
    ----------
    data : TargetData
        The real target's samples (:func:`~massive_activations.prediction.data.target_data`):
        only its layout and transform are used, never its values.
    protocol : {"paper_split", "paper_cv5", "lomo"}
        The protocol whose verdict the power qualifies (the ledger's: ``paper_split``).
    model_types : sequence of str
        The regressors whose best R^2 is the statistic (the ``mean`` baseline is never
        counted as best).
    n_replicates : int
        Synthetic targets (each a fresh draw of architectures, noise and split).
    n_permutations : int
        Block permutations of each replicate's null (as for the real data).
    noise : float
        Sd of the per-layer noise of the signal (about 1.4 sd of architecture signal: 0.05
        is a strong, nearly noiseless signal; raise it to ask about weaker ones).
    design : {"random", "real"}
        Random architectures per group, or the real features (module docstring).
    null : {"blocks", "rows"}
        The permutation scheme.
    seed : int
        Replicate ``k`` draws from ``numpy.random.default_rng([seed, k])`` and splits with
        seed ``seed + k``: the result depends on the seed only, not on ``n_jobs``.
    grids : mapping, optional
        Hyperparameter grids (:func:`~massive_activations.prediction.validation.cross_validate`).
    n_jobs : int
        Replicates run in parallel processes (joblib).
    progress : bool
        Show a tqdm progress bar.
    fits_used : str, optional
        Label of the fits (``"identified"`` or ``"all"``) recorded in the result.
    early_stop : bool
        Stop a replicate's permutations as soon as enough null maxima reach its best R^2
        that the 95th percentile of all ``n_permutations`` cannot fall below it: the
        replicate is then not detected, exactly as with every permutation run (the power is
        the same; undetectable layouts cost a fraction).

    Returns
    -------
    dict
        Keys :data:`POWER_COLUMNS`: ``power`` (share of replicates whose best R^2 exceeds
        the 95th percentile of their null of the maximum), ``power_lo``, ``power_hi``
        (Clopper-Pearson 95 %), ``best_r2_median`` over replicates and ``null_q95_median``
        over the replicates whose permutations all ran (NaN when every one stopped early).
        When the protocol cannot run on the layout, ``power`` is NaN and ``note`` says why.
    """
    if n_permutations < 1:
        raise ValueError(f"power_check needs n_permutations >= 1; got {n_permutations}.")
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {PROTOCOLS}.")
    regressors = [m for m in model_types if m != "mean"]
    if not regressors:
        raise ValueError("power_check needs at least one regressor besides 'mean'.")
    row = dict.fromkeys(POWER_COLUMNS, np.nan)
    row.update(
        fits_used=fits_used,
        transforms=data.transforms,
        target=data.target,
        protocol=protocol,
        design=design,
        noise=float(noise),
        n_replicates=int(n_replicates),
        n_used=len(data.y),
        n_models=len(set(data.models)),
        n_architectures=len(set(data.groups)),
        model_types=json.dumps(list(regressors)),
        null_scheme=null,
        n_permutations=int(n_permutations),
        seed=seed,
        note=infeasible(data, protocol),
    )
    if row["note"]:
        row["n_detected"] = 0
        return row
    kw = dict(
        protocol=protocol,
        model_types=regressors,
        n_permutations=n_permutations,
        noise=noise,
        design=design,
        null=null,
        seed=seed,
        grids=grids,
        early_stop=early_stop,
    )
    out = run_jobs(
        _replicate,
        [(data, k) for k in range(n_replicates)],
        n_jobs=n_jobs,
        progress=progress,
        desc=f"power {data.target}",
        **kw,
    )
    best, q95 = np.array(out, float).reshape(-1, 2).T
    detected = int(np.sum(best > q95))  # NaN (stopped early): not detected
    lo = stats.beta.ppf(0.025, detected, n_replicates - detected + 1) if detected else 0.0
    hi = (
        stats.beta.ppf(0.975, detected + 1, n_replicates - detected)
        if detected < n_replicates
        else 1.0
    )
    row.update(
        power=detected / n_replicates,
        power_lo=float(lo),
        power_hi=float(hi),
        n_detected=detected,
        best_r2_median=float(np.nanmedian(best)),
        null_q95_median=float(np.nanmedian(q95)) if np.isfinite(q95).any() else np.nan,
        note="",
    )
    return row


def power_table(
    fits: pd.DataFrame,
    *,
    targets: Sequence[str] = TARGETS,
    protocols: Sequence[str] = ("paper_split",),
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
    groups: Mapping | None = None,
    identified_only: bool = True,
    transforms: str = "ours",
    progress: bool = True,
    **kwargs,
) -> pd.DataFrame:
    """:func:`power_check` of each target (on its own layout) and protocol, one table.

    ``hypothesis, procedure, architectures, groups, identified_only, transforms``: see
    :func:`~massive_activations.prediction.data.target_data`; other keyword arguments go to
    :func:`power_check`.  Columns :data:`POWER_COLUMNS`.
    """
    rows = []
    fits_used = "identified" if identified_only else "all"
    for t in targets:
        data = target_data(
            fits,
            t,
            hypothesis=hypothesis,
            procedure=procedure,
            architectures=architectures,
            groups=groups,
            identified_only=identified_only,
            transforms=transforms,
        )
        for p in protocols:
            rows.append(
                power_check(data, protocol=p, progress=progress, fits_used=fits_used, **kwargs)
            )
    table = pd.DataFrame(rows, columns=list(POWER_COLUMNS))
    table["n_detected"] = table["n_detected"].astype(np.int64)
    return table
