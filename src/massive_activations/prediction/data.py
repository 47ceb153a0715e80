"""The predictor's samples: one per (model, layer) of the fits table, per target.

**Data.**  One sample per (model, layer) of the fits table (``fit_suite.fit_all``), from one
hypothesis (Eq. 9) and one fitting procedure (``"ours"`` by default).  For each target only the
layers whose parameter is identified (the fits table's ``<name>_identified``), finite and
inside its transform's domain (``> 0`` on a ``log`` scale,
:data:`~massive_activations.prediction.transforms.TRANSFORMS`) are used; :func:`target_counts`
reports how many were used, unidentified, missing (failed fits) and out of the domain.

**Architecture groups.**  Seed replicates of one architecture (``L4-d128-h4``,
``L4-d128-h4-s1``, ...) have identical features: a predictor that saw one of them in training
has seen the other's architecture.  Every sample carries its model's group
(:attr:`TargetData.groups`): by default the models with the same ``n_layers, d_model,
n_heads, d_ff`` form one group, named ``L<layers>-d<width>-h<heads>`` (``-f<d_ff>`` added
when ``d_ff != 4 d``); a mapping ``{model: group}`` (e.g. :func:`architecture_groups` of
``architectures.parquet``) may merge architectures further, but never split models whose
features are identical (that would leak).  Leave-one-model-out holds out a whole group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from massive_activations.prediction.features import FEATURE_NAMES, architecture, layer_features
from massive_activations.prediction.transforms import (
    TARGETS,
    check_target,
    check_transforms,
    in_domain,
    scale_name,
)

__all__ = [
    "TargetData",
    "architecture_groups",
    "model_groups",
    "target_counts",
    "target_data",
]


@dataclass(frozen=True)
class TargetData:
    """The samples of one target: features, values (original units) and counts.

    Attributes
    ----------
    target : str
    features : pandas.DataFrame
        One row per used layer: ``model, architecture, layer`` and :data:`FEATURE_NAMES`
        (``architecture``: the model's group, see the module docstring).
    y : numpy.ndarray
        The target's fitted values, original units.
    counts : dict
        ``n_layers`` (rows of the fits table for this hypothesis and procedure), ``n_used``,
        ``n_unidentified`` (finite but not identified), ``n_missing`` (no finite value),
        ``n_out_of_domain`` (identified, finite, but outside the transform's domain).
    transforms : str
        ``"ours"`` or ``"paper"``: the target transforms
        (:data:`~massive_activations.prediction.transforms.TRANSFORMS`).
    """

    target: str
    features: pd.DataFrame
    y: np.ndarray
    counts: dict
    transforms: str = "ours"

    @property
    def X(self) -> np.ndarray:
        """Feature matrix, columns :data:`FEATURE_NAMES`."""
        return self.features[list(FEATURE_NAMES)].to_numpy(float)

    @property
    def groups(self) -> np.ndarray:
        """Architecture group of each sample (the groups of leave-one-model-out)."""
        return self.features["architecture"].astype(str).to_numpy()

    @property
    def models(self) -> np.ndarray:
        """Model name of each sample (the blocks of the permutation null)."""
        return self.features["model"].astype(str).to_numpy()

    @property
    def scale(self) -> str:
        """The target's transform (``log``, ``slog1p`` or ``yeo-johnson``)."""
        return scale_name(self.target, self.transforms)


def architecture_groups(table: pd.DataFrame) -> dict[str, str]:
    """``{model: architecture}`` from a table with ``model`` and ``architecture`` columns
    (the suite's ``architectures.parquet``: seed replicates share an architecture)."""
    missing = [c for c in ("model", "architecture") if c not in table.columns]
    if missing:
        raise ValueError(
            f"The architectures table lacks columns {missing}; read architectures.parquet "
            "of a suite made with seed replicates (make data)."
        )
    return dict(zip(table["model"].astype(str), table["architecture"].astype(str), strict=True))


def _select(fits: pd.DataFrame, hypothesis: str, procedure: str) -> pd.DataFrame:
    needed = ["model", "layer", "hypothesis", "procedure"]
    missing = [c for c in needed if c not in fits.columns]
    if missing:
        raise ValueError(f"The fits table lacks columns {missing}; build it with fit_all.")
    rows = fits[(fits["hypothesis"] == hypothesis) & (fits["procedure"] == procedure)]
    if rows.empty:
        have = sorted(set(zip(fits["hypothesis"], fits["procedure"], strict=True)))
        raise ValueError(
            f"The fits table has no rows of hypothesis {hypothesis!r} and procedure "
            f"{procedure!r}; it has (hypothesis, procedure) {have}."
        )
    dup = rows.duplicated(["model", "layer"])
    if dup.any():
        raise ValueError(
            f"The fits table has {int(dup.sum())} repeated (model, layer) rows for "
            f"{hypothesis}/{procedure}; pass one suite's fits (one quantity)."
        )
    return rows


def _group_names(archs: Mapping[str, object], groups: Mapping | None) -> dict[str, str]:
    """``{model: group}``: identical architectures share a group (see the module docstring)."""
    keys = {m: (a.n_layers, a.d_model, a.n_heads, a.d_ff) for m, a in archs.items()}
    if groups is None:
        return {
            m: f"L{L}-d{d}-h{H}" + ("" if f == 4 * d else f"-f{f}")
            for m, (L, d, H, f) in keys.items()
        }
    lacking = sorted(m for m in archs if m not in groups)
    if lacking:
        raise ValueError(
            f"The groups mapping lacks models {lacking}; give every model its architecture "
            "(architecture_groups of architectures.parquet), or pass groups=None."
        )
    out = {m: str(groups[m]) for m in archs}
    by_key: dict[tuple, set] = {}
    for m, k in keys.items():
        by_key.setdefault(k, set()).add(out[m])
    split = {k: sorted(v) for k, v in by_key.items() if len(v) > 1}
    if split:
        raise ValueError(
            "Models with identical features are in different groups "
            f"({list(split.values())}): holding one out while the other trains would leak its "
            "architecture. Put seed replicates and variants of an architecture in one group."
        )
    return out


def model_groups(
    models, *, architectures: Mapping | None = None, groups: Mapping | None = None
) -> dict[str, str]:
    """``{model: architecture group}`` of some models (see the module docstring).

    ``architectures``: ``{model: spec}`` for names that do not tell the architecture;
    ``groups``: an explicit ``{model: group}``, checked never to split identical
    architectures.
    """
    archs = {str(m): architecture((architectures or {}).get(m, m), name=str(m)) for m in models}
    return _group_names(archs, groups)


def _features_of(
    rows: pd.DataFrame, architectures: Mapping | None, groups: Mapping | None
) -> pd.DataFrame:
    frames, archs = [], {}
    for model, part in rows.groupby("model", sort=True):
        spec = (architectures or {}).get(model, model)
        arch = architecture(spec, name=str(model))
        if "n_layers" in part.columns and (part["n_layers"] != arch.n_layers).any():
            raise ValueError(
                f"Model {model!r} has n_layers {sorted(set(part['n_layers']))} in the fits table "
                f"but {arch.n_layers} in its architecture; pass the right one in architectures."
            )
        archs[str(model)] = arch
        frames.append(layer_features(arch, part["layer"].to_numpy()).set_index(part.index))
    feats = pd.concat(frames).loc[rows.index]
    names = _group_names(archs, groups)
    feats.insert(1, "architecture", feats["model"].astype(str).map(names))
    return feats


def target_data(
    fits: pd.DataFrame,
    target: str,
    *,
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
    groups: Mapping | None = None,
    identified_only: bool = True,
    transforms: str = "ours",
) -> TargetData:
    """The usable samples of one target: identified, finite values and their features.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table (:func:`massive_activations.fitting.fit_all.fit_all`), or any table with
        ``model, layer, hypothesis, procedure``, the target and ``<target>_identified``.
    target : {"A", "lam", "gam", "t0", "K"}
    hypothesis, procedure : str
        Which fits to use.
    architectures : mapping, optional
        ``{model: spec}`` for models whose name does not tell their architecture (see
        :func:`massive_activations.prediction.features.architecture`).
    groups : mapping, optional
        ``{model: architecture group}`` (see the module docstring; default: models with
        identical architectures form a group).
    identified_only : bool
        Use only the layers whose fit identified the target (default).  ``False`` uses every
        finite value, identified or not, as the paper did (it reports no identifiability):
        a predictor can then learn values that the data did not determine.
    transforms : {"ours", "paper"}
        The target transforms (:data:`~massive_activations.prediction.transforms.TRANSFORMS`);
        values outside the transform's domain are left out and counted.

    Returns
    -------
    TargetData
    """
    check_target(target)
    check_transforms(transforms)
    rows = _select(fits, hypothesis, procedure)
    flag = f"{target}_identified"
    if target not in rows.columns or flag not in rows.columns:
        raise ValueError(f"The fits table lacks the columns {target!r} and {flag!r}.")
    value = pd.to_numeric(rows[target], errors="coerce").to_numpy(float)
    finite = np.isfinite(value)
    ident = rows[flag].astype("boolean").fillna(False).to_numpy(bool)
    candidate = finite & ident if identified_only else finite
    inside = in_domain(target, value, transforms)
    used = candidate & inside
    counts = {
        "n_layers": len(rows),
        "n_used": int(used.sum()),
        "n_unidentified": int((finite & ~ident).sum()),
        "n_missing": int((~finite).sum()),
        "n_out_of_domain": int((candidate & ~inside).sum()),
    }
    feats = _features_of(rows, architectures, groups)[used].reset_index(drop=True)
    cols = ["model", "architecture", "layer", *FEATURE_NAMES]
    return TargetData(target, feats[cols], value[used], counts, transforms)


def target_counts(
    fits: pd.DataFrame,
    *,
    targets: Sequence[str] = TARGETS,
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
    groups: Mapping | None = None,
    identified_only: bool = True,
    transforms: str = "ours",
) -> pd.DataFrame:
    """Per target: layers in the fits, used, unidentified, missing, out of the transform's
    domain; models and architecture groups among the used layers."""
    rows = []
    for t in targets:
        d = target_data(
            fits,
            t,
            hypothesis=hypothesis,
            procedure=procedure,
            architectures=architectures,
            groups=groups,
            identified_only=identified_only,
            transforms=transforms,
        )
        rows.append(
            {
                "target": t,
                **d.counts,
                "n_models": len(set(d.models)),
                "n_architectures": len(set(d.groups)),
            }
        )
    return pd.DataFrame(rows)
