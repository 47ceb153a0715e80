# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The curve model
#
# **Reproduces:** the mathematical model of the paper's Section 5: Eq. 9, its limit (Eq. 10),
# its derivative and peak time (Eqs. 11-13), the reparametrisation the paper fits (Eq. 14),
# and the peak-time surface of **Fig. 8** {cite}`gallego2025hidden`.
#
# **Needs:** a CPU and a few seconds; no data, no network.
#
# **Parameters (papermill):** `t_max` (the training window, steps; Pythia's 143,000),
# `t0_fixed` (the time offset held fixed in the surface), `grid_points` (resolution of the
# surface), `log10_lam_range` and `log10_gam_range` (the surface's axes), `early` and `rise`
# (parameters of the two example curves), `n_checks` and `seed` (the random parameter sets
# on which Eq. 9 and Eq. 14 are compared).
#
# Every function used here lives in `massive_activations.curve` and is unit-tested there
# (`tests/test_curve.py`): the two forms agree to $10^{-12}$, the analytic Jacobians match
# finite differences, and $t_\text{peak}$ is where the derivative changes sign.

# %% tags=["parameters"]
t_max = 143_000
t0_fixed = 1.0
grid_points = 200
log10_lam_range = (-5.0, 0.0)
log10_gam_range = (-5.0, 0.0)
early = {"A": 50.0, "lam": 0.02, "gam": 0.002, "t0": 1.0, "K": 20.0}
rise = {"A": 20.0, "lam": 1e-6, "gam": 0.01, "t0": 1.0, "K": 5.0}
n_checks = 1000
seed = 0

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from myst_nb import glue

from massive_activations import curve, plots
from massive_activations.schedule import pythia_steps

sns.set_theme(context="notebook", style="whitegrid")

# %% [markdown]
# ## The model
#
# For a layer's top-1/median ratio $f$ at training step $t$, the paper proposes
#
# $$
# f(t) = A\, e^{-\lambda x} \log x + K, \qquad x = \gamma t + t_0, \tag{Eq. 9}
# $$
#
# with amplitude $A$, decay rate $\lambda$, time scaling $\gamma > 0$, time offset $t_0$ and
# asymptotic baseline $K$. The logarithm needs $x > 0$ at every step, so $t_0 > 0$ when the
# series starts at step 0. Two forces compete: $\log x$ grows without bound, while
# $e^{-\lambda x}$ pulls the curve back. For $\lambda > 0$ the exponential wins and
#
# $$
# \lim_{t\to\infty} f(t) = K. \tag{Eq. 10}
# $$
#
# ### Where the curve peaks
#
# Differentiating,
#
# $$
# f'(t) = A\gamma\, e^{-\lambda x}\left(\frac{1}{x} - \lambda \log x\right),
# $$
#
# which vanishes where $\lambda x \log x = 1$. Writing $u = \log x$ gives
# $u e^{u} = 1/\lambda$, whose solution is the principal branch of the Lambert W function
# {cite}`corless1996lambertw`:
#
# $$
# x^\ast = e^{W(1/\lambda)} = \frac{1}{\lambda\, W(1/\lambda)}, \qquad
# t_\text{peak} = \frac{x^\ast - t_0}{\gamma}. \tag{Eq. 13}
# $$
#
# Since $x \log x$ increases from 0 on $x > 1$, there is exactly one root for every
# $\lambda > 0$, and for $A > 0$ it is a maximum. It lies inside training only when
# $x^\ast > t_0$ (the peak is after step 0) and $t_\text{peak} \le t_\text{max}$. This splits
# curves into the paper's two regimes: an **early peak** (rise, peak, decay towards $K$) and a
# **logarithmic rise** (the peak, if any, lies beyond the end of training). A third case,
# $x^\ast \le t_0$, is a curve that only decays during training.
#
# ### The form the paper fits
#
# Expanding $e^{-\lambda(\gamma t + t_0)}\log\big(\gamma (t + t_0/\gamma)\big)$ gives
#
# $$
# f(t) = e^{-b t}\big(A_1 \log(t + \tau_0) + A_2\big) + K, \tag{Eq. 14}
# $$
#
# with $b = \lambda\gamma$, $\tau_0 = t_0/\gamma$, $A_1 = A e^{-\lambda t_0}$ and
# $A_2 = A_1 \log\gamma$. The map is invertible whenever $A_1 \neq 0$:
# $\gamma = e^{A_2/A_1}$, $\lambda = b/\gamma$, $t_0 = \tau_0\gamma$,
# $A = A_1 e^{b\tau_0}$. Eq. 14 separates the amplitude from the time axis, which is why it
# is easier to fit; the fitting chapter uses both.

# %% [markdown]
# ## The two forms are the same curve
#
# On random valid parameter sets, evaluated on Pythia's 154 checkpoint steps, Eq. 9 and Eq. 14
# (after conversion) agree, and converting there and back recovers the parameters.

# %% tags=["hide-input"]
rng = np.random.default_rng(seed)
steps = np.asarray(pythia_steps(), dtype=float)
draws = {
    "A": rng.uniform(-100, 100, n_checks),
    "lam": 10 ** rng.uniform(-6, -1, n_checks),
    "gam": 10 ** rng.uniform(-4, 0, n_checks),
    "t0": rng.uniform(0.5, 50, n_checks),
    "K": rng.uniform(0, 100, n_checks),
}
columns = {k: v[:, None] for k, v in draws.items()}
f9 = curve.eq9(steps, **columns)
f14 = curve.eq14(steps, *curve.eq9_to_eq14(**columns))
back = curve.eq14_to_eq9(*curve.eq9_to_eq14(**draws))
max_rel_curve_diff = float(np.max(np.abs(f9 - f14) / np.maximum(1.0, np.abs(f9))))
max_rel_param_diff = float(
    max(np.max(np.abs(getattr(back, k) - draws[k]) / np.abs(draws[k])) for k in draws)
)
glue("n_checks", int(n_checks), display=False)
glue("max_rel_curve_diff", max_rel_curve_diff, display=False)
glue("max_rel_param_diff", max_rel_param_diff, display=False)
print(f"max relative difference Eq. 9 vs Eq. 14 over {n_checks} sets: {max_rel_curve_diff:.2e}")
print(f"max relative round-trip error of the parameters: {max_rel_param_diff:.2e}")

# %% [markdown]
# Over {glue:text}`n_checks` random parameter sets, the largest relative difference between
# the two forms is {glue:text}`max_rel_curve_diff:.1e`, and the parameters survive the round
# trip Eq. 9 → Eq. 14 → Eq. 9 to a relative error of {glue:text}`max_rel_param_diff:.1e`:
# floating-point rounding, nothing more.
#
# ## The two regimes
#
# Two example curves on Pythia's checkpoint schedule ({numref}`fig-curve-regimes`).

# %% tags=["hide-input"]
examples = {"early peak": early, "logarithmic rise": rise}
ax = plots.plot_regime_examples(examples, t_max, steps)
ax.set_title("Eq. 9 in its two regimes")
glue("fig-curve-regimes", ax.figure, display=False)
plt.close("all")

tp_early = float(curve.t_peak(early["lam"], early["gam"], early["t0"]))
tp_rise = float(curve.t_peak(rise["lam"], rise["gam"], rise["t0"]))
glue("tp_early", tp_early, display=False)
glue("peak_early", float(curve.eq9(tp_early, **early)), display=False)
glue("tp_rise", tp_rise, display=False)
glue("t_max", int(t_max), display=False)
glue("lam_early", early["lam"], display=False)
glue("lam_rise", rise["lam"], display=False)

# %% [markdown]
# ```{glue:figure} fig-curve-regimes
# :name: fig-curve-regimes
#
# Eq. 9 with two parameter sets on Pythia's checkpoint schedule (log step axis, step 0 drawn
# at the left edge): an early peak and a logarithmic rise. The markers are $t_\text{peak}$
# from Eq. 13; the dashed lines are the baselines $K$.
# ```
#
# With $\lambda$ = {glue:text}`lam_early`, the first curve peaks at step
# {glue:text}`tp_early:,.0f` at a ratio of {glue:text}`peak_early:.1f`, then decays towards
# its baseline. With $\lambda$ = {glue:text}`lam_rise`, the second curve's peak would come at
# step {glue:text}`tp_rise:,.0f`, far beyond the {glue:text}`t_max:,` steps of training, so
# over the window it is a logarithmic rise.

# %% [markdown]
# ## The peak-time surface (paper Fig. 8)
#
# $t_\text{peak}$ depends on $(\lambda, \gamma, t_0)$ only, not on $A$ or $K$. Holding
# $t_0$ fixed, {numref}`fig-curve-surface` classifies each $(\lambda, \gamma)$ into the three
# cases (left) and shows $t_\text{peak}$ where the peak falls inside training (right).

# %% tags=["hide-input"]
surface = plots.peak_surface(
    np.logspace(*log10_lam_range, grid_points), np.logspace(*log10_gam_range, grid_points),
    t0_fixed, t_max,
)  # fmt: skip
glue("fig-curve-surface", plots.plot_peak_surface(surface, t0_fixed, t_max), display=False)
plt.close("all")

frac_inside = float(np.mean(surface["regime"] == "early_peak"))
glue("frac_inside", 100 * frac_inside, display=False)
glue("t0_fixed", float(t0_fixed), display=False)

# For the exercises: the decay rate whose x* equals 20 (lam = 1 / (x* log x*)), and how much
# smaller gam must be for the early-peak example's peak to leave the window.
glue("lam_x20", float(1 / (20 * np.log(20))), display=False)
gam_exit = (float(curve.peak_x(early["lam"])) - early["t0"]) / t_max
glue("gam_exit_ratio", early["gam"] / gam_exit, display=False)
glue("gam_early", early["gam"], display=False)

# %% [markdown]
# ```{glue:figure} fig-curve-surface
# :name: fig-curve-surface
#
# Eq. 9's peak over a grid of $(\lambda, \gamma)$ at $t_0$ = {glue:text}`t0_fixed`: the
# regime of each pair (left: early peak, logarithmic rise beyond the last step
# {glue:text}`t_max:,`, or decay from the start) and $t_\text{peak}$ where it falls inside
# training (right, log colour scale, contours of equal $t_\text{peak}$; no-peak region grey;
# paper Fig. 8).
# ```
#
# At $t_0$ = {glue:text}`t0_fixed`, {glue:text}`frac_inside:.1f`% of this $(\lambda, \gamma)$
# grid peaks inside training. Small $\gamma$ stretches the curve over many steps and pushes the
# peak out of the window (logarithmic rise); large $\lambda$ moves $x^\ast$ towards 1, and once
# $x^\ast \le t_0$ the curve only decays. The contours are lines of equal $t_\text{peak}$:
# along them $\gamma \propto x^\ast(\lambda) - t_0$, which is why the fitted $(\lambda,\gamma)$
# of a single layer can trade off against each other, a point the fitting chapter returns to.
#
# ## Exercises
#
# 1. Set `t0_fixed = 20` and re-run. Which region grows, and why does the formula
#    $x^\ast > t_0$ predict it?
# 2. For the early-peak example, by how much must $\gamma$ shrink for the peak to leave
#    Pythia's 143,000-step window? Check your answer with `curve.t_peak`.
#
# :::{admonition} Solutions
# :class: dropdown
#
# 1. The *decay* region grows: $x^\ast(\lambda)$ does not depend on $t_0$, so a larger $t_0$
#    exceeds $x^\ast$ for more values of $\lambda$: those with $x^\ast \le 20$, i.e.
#    $\lambda \ge 1/(20 \log 20)$ = {glue:text}`lam_x20:.4f`.
# 2. $t_\text{peak} = (x^\ast - t_0)/\gamma$ scales as $1/\gamma$: the peak leaves the window
#    once $\gamma < (x^\ast - t_0)/t_\text{max}$, {glue:text}`gam_exit_ratio:.1f` times smaller
#    than the example's $\gamma$ = {glue:text}`gam_early`.
# :::
