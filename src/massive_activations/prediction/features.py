"""Architecture features of a layer: paper Table 4, from a model's depth, width and heads.

For layer ``l`` (counted from 1 to ``L``) of a model with ``L`` layers, width ``d``, ``H``
attention heads and MLP width ``d_ff``, and its relative depth ``r = (l - 1) / (L - 1)``
(``r = 0`` for a single-layer model), the ten features of paper Table 4 are
(:data:`FEATURE_NAMES`, in order)

==================  ===============
``l_over_L``        ``r``
``l_over_L_sq``     ``r^2``
``l_over_L_cube``   ``r^3``
``l_over_L_sqrt``   ``sqrt(r)``
``H_over_d``        ``H / d``
``dff_over_d``      ``d_ff / d``
``d_over_L``        ``d / L``
``H_over_L``        ``H / L``
``log_d``           ``log d`` (natural logarithm)
``l_times_L``       ``l * L``
==================  ===============

**Layer index and relative depth.**  Layers are counted from 1 (the first decoder layer) to
``L`` (the last), as in the fits table's ``layer``.  Table 4 writes the relative position
as ``l / L`` and defines it as "0 = first layer, 1 = last layer" (the book's page "Reading
the paper", section on the predictor): no single integer index makes ``l / L`` do both, so
the features follow the definition, ``r = (l - 1) / (L - 1)``, which is exactly 0 at the
first layer and 1 at the last of every model (and 0 for ``L = 1``); the four position
features are ``r`` and its square, cube and square root, under the paper's names.  Had we
used ``l / L`` with ``l = 1..L``, the first layer would sit at ``1 / L`` (0.5 for a
two-layer model) and only the last layer would agree; with ``l = 0..L-1`` the last layer of
a shallow model would never reach 1.  The interaction ``l * L`` is built on the layer
index, not on the position, and keeps ``l = 1..L`` (it is the one feature that grows with
both depth and position).  The width and head
features do not depend on the choice, and tree models see the same order of layers within
a model whichever is used; the choice matters when one model's layers are compared with
another's.

``d_ff / d`` is 4 in every Pythia model and in our suites (``d_ff = 4 d``), so on those data
it is a constant feature; it is kept so that the feature set is the paper's.

Architectures come from :func:`architecture` (a suite's
:class:`~massive_activations.suite.configs.ModelSpec`, a mapping, a suite-style name
``"L4-d128-h4"`` or a Pythia name such as ``"pythia-1.4b"``), the Pythia ones from the
reference file (``reference.table("pythia_architectures")``, from Pythia's README and model configs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from massive_activations import reference
from massive_activations.measurement.trajectories import paper_model_key

__all__ = [
    "FEATURE_NAMES",
    "Architecture",
    "architecture",
    "features_table",
    "layer_features",
    "pythia_architectures",
    "suite_architectures",
]

#: Paper Table 4's features, in the order of the table.
FEATURE_NAMES = (
    "l_over_L",
    "l_over_L_sq",
    "l_over_L_cube",
    "l_over_L_sqrt",
    "H_over_d",
    "dff_over_d",
    "d_over_L",
    "H_over_L",
    "log_d",
    "l_times_L",
)

_SUITE_NAME = re.compile(r"^L(?P<L>[0-9]+)-d(?P<d>[0-9]+)-h(?P<H>[0-9]+)(?:-s[0-9]+)?(?:-packed)?$")


@dataclass(frozen=True)
class Architecture:
    """What the features need to know about a model.

    Attributes
    ----------
    name : str
        Model name (as in the fits table's ``model`` column).
    n_layers, d_model, n_heads, d_ff : int
        ``L``, ``d``, ``H`` and the MLP width ``d_ff``.
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int

    def __post_init__(self) -> None:
        sizes = (self.n_layers, self.d_model, self.n_heads, self.d_ff)
        if any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(
                f"Architecture {self.name!r}: n_layers, d_model, n_heads and d_ff must be "
                f"positive integers; got {sizes}."
            )


def pythia_architectures() -> dict[str, Architecture]:
    """The nine Pythia models (paper sizes ``"14M"`` ... ``"12B"``), from the reference file."""
    table = reference.table("pythia_architectures")
    return {
        size: Architecture(
            f"pythia-{size.lower()}",
            int(row["n_layers"]),
            int(row["d_model"]),
            int(row["n_heads"]),
            int(row["d_ff"]),
        )
        for size, row in table.iterrows()
    }


def suite_architectures(suite: str) -> dict[str, Architecture]:
    """The architectures of a suite's models, by model name.

    Our suites: :func:`massive_activations.suite.configs.get_suite`.  ``"paper"`` (the
    paper's release): the nine Pythia models (:func:`pythia_architectures`); ``"pythia"``:
    those and their ``-deduped`` twins (same architectures).
    """
    from massive_activations.datasets.activations import PYTHIA_SUITE
    from massive_activations.datasets.release import PAPER_SUITE

    if suite in (PAPER_SUITE, PYTHIA_SUITE):
        archs = {a.name: a for a in pythia_architectures().values()}
        if suite == PYTHIA_SUITE:
            archs |= {f"{n}-deduped": architecture(a, f"{n}-deduped") for n, a in archs.items()}
        return archs
    from massive_activations.suite.configs import get_suite

    return {m.name: architecture(m) for m in get_suite(suite).models}


def _from_name(name: str) -> Architecture:
    match = _SUITE_NAME.match(name)
    if match:
        L, d, H = (int(match[k]) for k in ("L", "d", "H"))
        return Architecture(name, L, d, H, 4 * d)
    size = paper_model_key(name)
    pythia = {k.lower(): a for k, a in pythia_architectures().items()}
    if size is not None and size in pythia:
        a = pythia[size]
        return Architecture(name, a.n_layers, a.d_model, a.n_heads, a.d_ff)
    raise ValueError(
        f"Cannot tell the architecture of model {name!r}: it is neither a suite name "
        f"'L<layers>-d<width>-h<heads>' nor a Pythia model ({sorted(pythia)}). Pass an "
        "Architecture, a ModelSpec or a mapping with n_layers, d_model, n_heads (and d_ff)."
    )


def architecture(spec, name: str | None = None) -> Architecture:
    """An :class:`Architecture` from a spec.

    Parameters
    ----------
    spec : Architecture, ModelSpec, mapping or str
        An object with ``n_layers``, ``d_model``, ``n_heads`` (and ``d_ff``; default
        ``4 * d_model``) as attributes or keys, or a model name: ``"L4-d128-h4"`` (our suites'
        naming, ``d_ff = 4 d``) or a Pythia model (``"pythia-1b"``, ``"1.4B"``,
        ``"EleutherAI/pythia-70m-deduped"``).
    name : str, optional
        Name to give it (default: the spec's ``name``, or the string).

    Returns
    -------
    Architecture
    """
    if isinstance(spec, str):
        arch = _from_name(spec)
    else:
        get = (
            spec.get
            if isinstance(spec, Mapping)
            else lambda k, default=None: getattr(spec, k, default)
        )
        missing = [k for k in ("n_layers", "d_model", "n_heads") if get(k) is None]
        if missing:
            raise ValueError(
                f"The architecture spec {spec!r} lacks {missing}: give n_layers, d_model, "
                "n_heads (and d_ff, default 4 * d_model)."
            )
        d = int(get("d_model"))
        d_ff = get("d_ff")
        arch = Architecture(
            str(get("name") or name or "model"),
            int(get("n_layers")),
            d,
            int(get("n_heads")),
            4 * d if d_ff is None else int(d_ff),
        )
    if name is not None and name != arch.name:
        arch = Architecture(name, arch.n_layers, arch.d_model, arch.n_heads, arch.d_ff)
    return arch


def layer_features(spec, layers: int | Iterable[int] | None = None) -> pd.DataFrame:
    """Paper Table 4's features of some or all layers of one architecture.

    Parameters
    ----------
    spec
        Anything :func:`architecture` accepts.
    layers : int or iterable of int, optional
        Layer indices ``l`` in ``1..L`` (default: all).

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``model, layer, n_layers, d_model, n_heads, d_ff``, then the
        features (:data:`FEATURE_NAMES`).
    """
    arch = architecture(spec)
    L = arch.n_layers
    if layers is None:
        ls = np.arange(1, L + 1)
    else:
        ls = np.atleast_1d(np.asarray(layers))
        bad = [int(x) for x in ls if int(x) != x or not 1 <= x <= L]
        if bad:
            raise ValueError(
                f"Layers {bad} are not in 1..{L} for model {arch.name!r}: layers are counted "
                "from 1 (the first decoder layer) to n_layers (the last)."
            )
        ls = ls.astype(np.int64)
    r = (ls - 1) / (L - 1) if L > 1 else np.zeros(len(ls))
    d, H = float(arch.d_model), float(arch.n_heads)
    out = pd.DataFrame(
        {
            "model": arch.name,
            "layer": ls,
            "n_layers": L,
            "d_model": arch.d_model,
            "n_heads": arch.n_heads,
            "d_ff": arch.d_ff,
            "l_over_L": r,
            "l_over_L_sq": r**2,
            "l_over_L_cube": r**3,
            "l_over_L_sqrt": np.sqrt(r),
            "H_over_d": H / d,
            "dff_over_d": arch.d_ff / d,
            "d_over_L": d / L,
            "H_over_L": H / L,
            "log_d": np.log(d),
            "l_times_L": (ls * L).astype(float),
        }
    )
    return out


def features_table(specs: Iterable) -> pd.DataFrame:
    """:func:`layer_features` of every layer of several architectures, one table.

    ``specs``: anything :func:`architecture` accepts, e.g.
    ``suite_architectures("default").values()`` or ``pythia_architectures().values()``.
    """
    frames = [layer_features(s) for s in specs]
    if not frames:
        raise ValueError("features_table needs at least one architecture.")
    return pd.concat(frames, ignore_index=True)
