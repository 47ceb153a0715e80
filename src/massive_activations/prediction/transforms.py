"""Target transforms of the predictor (paper Section 6): ``log1p`` and Yeo-Johnson.

**Targets** are transformed as the paper did: ``log1p`` for ``A, lam, gam, t0`` and
Yeo-Johnson for ``K``.  ``log1p`` is applied sign-preserving, ``sign(x) log1p(|x|)``
(:func:`slog1p`), so that negative values (``A`` and ``t0`` can be negative under the paper's
procedure, which bounds only ``lam``) stay defined; on values >= 0 it is plain ``log1p``.
Yeo-Johnson's ``lambda`` (maximum likelihood, :class:`YeoJohnson`) is fitted on the training
fold only, inside a ``TransformedTargetRegressor``; its inverse is clipped to the transform's
range.  Predictions come back in original units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import FunctionTransformer

__all__ = [
    "TARGETS",
    "YeoJohnson",
    "check_target",
    "metric_scale",
    "scale_name",
    "slog1p",
    "slog1p_inverse",
    "target_transformer",
]

#: The predicted parameters of Eq. 9, in the paper's order.
TARGETS = ("A", "lam", "gam", "t0", "K")


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


def target_transformer(target: str):
    """The (unfitted) target transform of ``target``: Yeo-Johnson for ``K``, else slog1p."""
    check_target(target)
    if target == "K":
        return YeoJohnson()
    return FunctionTransformer(
        slog1p, inverse_func=slog1p_inverse, validate=False, check_inverse=False
    )


def scale_name(target: str) -> str:
    return "yeo-johnson" if target == "K" else "slog1p"


def metric_scale(target: str, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    t = target_transformer(target).fit(np.asarray(y, float).reshape(-1, 1))
    return lambda v: t.transform(np.asarray(v, float).reshape(-1, 1)).ravel()


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; choose one of {TARGETS}.")
