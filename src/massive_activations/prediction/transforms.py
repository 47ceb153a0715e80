"""Target transforms of the predictor: ours (sensible units) and the paper's (Section 6).

**Two sets of transforms** (:data:`TRANSFORMS`), chosen by the ``transforms`` argument of
every function that fits or scores a target:

=======  ===============  ======================
target   ``"ours"``       ``"paper"``
=======  ===============  ======================
``A``    ``slog1p``       ``slog1p``
``lam``  ``log``          ``slog1p``
``gam``  ``log``          ``slog1p``
``t0``   ``log``          ``slog1p``
``K``    ``yeo-johnson``  ``yeo-johnson``
=======  ===============  ======================

The paper transforms ``A, lam, gam, t0`` with ``log1p`` and ``K`` with Yeo-Johnson.  For the
amplitude ``A`` (tens to thousands, and negative under the paper's procedure) and the
asymptote ``K`` that is meaningful and ours keeps it.  For the rates and the offset it is
not: ``gam`` is about ``1e-4`` per step, ``lam`` and ``t0`` can be far below 1, and
``log1p(x) = x`` to first order there, so the paper's "transformed" ``gam`` is ``gam`` itself
and an R^2 on it weighs absolute differences of 1e-5 (one model with a large ``gam``
dominates).  Ours takes the natural logarithm of these three positive parameters (relative
differences; our procedure bounds them below by ``1e-9``).  A value ``<= 0`` is outside the
``log`` scale: :func:`massive_activations.prediction.data.target_data` leaves it out and
counts it (``n_out_of_domain``).

``log1p`` is applied sign-preserving, ``sign(x) log1p(|x|)`` (:func:`slog1p`), so that
negative values (``A`` and ``t0`` can be negative under the paper's procedure, which bounds
only ``lam``) stay defined; on values >= 0 it is plain ``log1p``.  Yeo-Johnson's ``lambda``
(maximum likelihood, :class:`YeoJohnson`) is fitted on the training fold only, inside a
``TransformedTargetRegressor``; its inverse is clipped to the transform's range.  Predictions
come back in original units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import FunctionTransformer

__all__ = [
    "TARGETS",
    "TRANSFORMS",
    "YeoJohnson",
    "check_target",
    "check_transforms",
    "in_domain",
    "metric_scale",
    "scale_name",
    "slog1p",
    "slog1p_inverse",
    "target_transformer",
]

#: The predicted parameters of Eq. 9, in the paper's order.
TARGETS = ("A", "lam", "gam", "t0", "K")

#: The transform (scale) of each target under each choice (see the module docstring).
TRANSFORMS: dict[str, dict[str, str]] = {
    "ours": {"A": "slog1p", "lam": "log", "gam": "log", "t0": "log", "K": "yeo-johnson"},
    "paper": {"A": "slog1p", "lam": "slog1p", "gam": "slog1p", "t0": "slog1p", "K": "yeo-johnson"},
}


def slog1p(x):
    """Sign-preserving ``log1p``: ``sign(x) * log1p(|x|)`` (plain ``log1p`` for ``x >= 0``)."""
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log1p(np.abs(x))


def slog1p_inverse(z):
    """Inverse of :func:`slog1p`: ``sign(z) * expm1(|z|)``."""
    z = np.asarray(z, dtype=float)
    return np.sign(z) * np.expm1(np.abs(z))


class YeoJohnson(TransformerMixin, BaseEstimator):
    """The Yeo-Johnson power transform, ``lambda`` by maximum likelihood on the fit data.

    Unlike scikit-learn's ``PowerTransformer`` it does not standardise, and its inverse
    clips values outside the transform's range (where the inverse is undefined) to just
    inside that range, so that a regression prediction always maps back to a number.
    """

    def fit(self, y, _=None):
        """Fit ``lambda_`` (``scipy.stats.yeojohnson_normmax``) on a column of values."""
        y = np.asarray(y, dtype=float).ravel()
        if y.size < 2 or not np.all(np.isfinite(y)):
            raise ValueError(f"Yeo-Johnson needs >= 2 finite values; got {y.size} values: {y}.")
        self.lambda_ = float(stats.yeojohnson_normmax(y)) if np.ptp(y) > 0 else 1.0
        return self

    def transform(self, y):
        """Yeo-Johnson of ``y`` (any shape) with the fitted ``lambda_``."""
        lam = self.lambda_
        y = np.asarray(y, dtype=float)
        pos = y >= 0
        out = np.empty_like(y)
        yp, yn = y[pos], y[~pos]
        out[pos] = np.log1p(yp) if lam == 0 else np.expm1(lam * np.log1p(yp)) / lam
        out[~pos] = -np.log1p(-yn) if lam == 2 else -np.expm1((2 - lam) * np.log1p(-yn)) / (2 - lam)
        return out

    def inverse_transform(self, z):
        """Inverse Yeo-Johnson; values beyond the transform's range are clipped to its edge."""
        lam = self.lambda_
        z = np.asarray(z, dtype=float).copy()
        eps = 1e-12
        if lam < 0:  # the non-negative branch reaches only z < -1/lam
            z = np.minimum(z, (eps - 1) / lam)
        if lam > 2:  # the negative branch reaches only z > 1/(2 - lam)
            z = np.maximum(z, (1 - eps) / (2 - lam))
        pos = z >= 0
        out = np.empty_like(z)
        zp, zn = z[pos], z[~pos]
        out[pos] = np.expm1(zp) if lam == 0 else np.expm1(np.log1p(lam * zp) / lam)
        out[~pos] = -np.expm1(-zn) if lam == 2 else -np.expm1(np.log1p(-(2 - lam) * zn) / (2 - lam))
        return out


def check_transforms(transforms: str) -> None:
    """Raise ValueError unless ``transforms`` is a key of :data:`TRANSFORMS`."""
    if transforms not in TRANSFORMS:
        raise ValueError(
            f"Unknown transforms {transforms!r}; choose one of {sorted(TRANSFORMS)} "
            "('ours': log for lam, gam, t0; 'paper': log1p as the paper)."
        )


def scale_name(target: str, transforms: str = "ours") -> str:
    """The transform of ``target`` under ``transforms``: ``log``, ``slog1p`` or ``yeo-johnson``."""
    check_target(target)
    check_transforms(transforms)
    return TRANSFORMS[transforms][target]


def in_domain(target: str, y, transforms: str = "ours") -> np.ndarray:
    """Which values the target's transform accepts (finite, and ``> 0`` on a ``log`` scale)."""
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    if scale_name(target, transforms) == "log":
        ok &= y > 0
    return ok


def target_transformer(target: str, transforms: str = "ours"):
    """The (unfitted) target transform of ``target`` (:data:`TRANSFORMS`)."""
    scale = scale_name(target, transforms)
    if scale == "yeo-johnson":
        return YeoJohnson()
    if scale == "log":
        return FunctionTransformer(np.log, inverse_func=np.exp, validate=False, check_inverse=False)
    return FunctionTransformer(
        slog1p, inverse_func=slog1p_inverse, validate=False, check_inverse=False
    )


def metric_scale(
    target: str, y: np.ndarray, transforms: str = "ours"
) -> Callable[[np.ndarray], np.ndarray]:
    """The fixed scale on which a target's errors are scored: its transform, fitted (for
    Yeo-Johnson) on all of ``y``."""
    t = target_transformer(target, transforms).fit(np.asarray(y, float).reshape(-1, 1))
    return lambda v: t.transform(np.asarray(v, float).reshape(-1, 1)).ravel()


def check_target(target: str) -> None:
    """Raise ValueError unless ``target`` is one of :data:`TARGETS`."""
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; choose one of {TARGETS}.")
