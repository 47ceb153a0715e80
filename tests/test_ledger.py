"""The claims ledger: its statistics against known values, and each claim's decision rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from massive_activations import audit, reference, registry
from massive_activations.measurement.trajectories import layer_summary

MODELS = ["L2-d64-h2", "L4-d64-h4", "L4-d128-h4", "L8-d128-h4"]


def _archs(models=MODELS, seq_len=64):
    rows = []
    for m in models:
        L, d = (int(x[1:]) for x in m.split("-")[:2])
        rows.append({"model": m, "params": 1000 * L * d * d, "seq_len": seq_len, "d_model": d})
    return pd.DataFrame(rows)


def _traj(init: dict, final: dict, layers=(1, 2)) -> pd.DataFrame:
    rows = []
    for m in init:
        for step, value in ((0, init[m]), (100, final[m])):
            for layer in layers:
                rows.append(
                    {"model": m, "step": step, "layer": layer, "ratio": value,
                     "ratio_mean": value * 1.01, "cv_pct": 3.0, "ci95_pct": 2.1}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_gaussian_ratio_matches_the_order_statistics():
    # E[max of n |z|] ~ Phi^-1(1 - 1/(2n)) grows like sqrt(2 log n); median |z| = 0.6745
    for n in (1_000, 50_000):
        approx = stats.norm.ppf(1 - 0.5 / n) / stats.norm.ppf(0.75)
        assert audit.gaussian_ratio(n) == pytest.approx(approx, rel=0.08)
    assert audit.gaussian_ratio(4096) == audit.gaussian_ratio(4096)  # seeded
    with pytest.raises(ValueError, match="n must be"):
        audit.gaussian_ratio(1)


def test_spearman_permutation_exact_values():
    rho, p = audit.spearman_permutation([1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert rho == pytest.approx(1.0)
    assert p == pytest.approx(1 / 120)  # only the identity reaches rho = 1
    rho, p = audit.spearman_permutation([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(1.0)
    # the sampled null for larger n stays close to the exact one
    x = np.arange(9)
    y = np.array([0, 2, 1, 3, 5, 4, 6, 8, 7])
    rho_e, p_e = audit.spearman_permutation(x, y, max_exact=9)
    rho_s, p_s = audit.spearman_permutation(x, y, max_exact=8, n_resamples=20000)
    assert rho_e == rho_s and p_s == pytest.approx(p_e, abs=2e-3)


def test_spearman_sampled_null_is_seeded_by_default_with_seed_0():
    # the ledger's p-values are reproducible because the default seed is fixed (0): the same
    # call gives the same value, and another seed another sample of the null
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=12), rng.normal(size=12)
    _, p_default = audit.spearman_permutation(x, y, n_resamples=400)
    _, p_0 = audit.spearman_permutation(x, y, n_resamples=400, seed=0)
    _, p_1 = audit.spearman_permutation(x, y, n_resamples=400, seed=1)
    assert p_default == p_0 != p_1


def test_wilson_interval_certified_values():
    # Wilson score intervals (Newcombe 1998, Table I): 0/10 -> 0-0.2775, 15/148 -> 0.0624-0.1605
    lo, hi = audit.wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = audit.wilson_interval(15, 148)
    assert lo == pytest.approx(0.0624, abs=1e-4) and hi == pytest.approx(0.1605, abs=1e-4)
    assert all(math.isnan(v) for v in audit.wilson_interval(0, 0))


# The statistics against independent implementations (SciPy): Wilson intervals against
# binomtest(...).proportion_ci(method="wilson") on a table of counts with both edges, at two
# levels; Spearman's rho against spearmanr (ties included) and its one-sided permutation
# p-value against permutation_test (exact null).  Mutation testing (make mutation) showed
# these checks were missing.

COUNTS = [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (15, 148), (1, 2), (7, 40), (99, 100)]


@pytest.mark.parametrize(("k", "n"), COUNTS)
@pytest.mark.parametrize("level", [0.95, 0.80])
def test_wilson_interval_matches_scipy(k, n, level):
    z = stats.norm.ppf(0.5 + level / 2)
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    lo, hi = audit.wilson_interval(k, n, z=z)
    assert lo == pytest.approx(ref.low, rel=1e-12, abs=1e-15)
    assert hi == pytest.approx(ref.high, rel=1e-12, abs=1e-15)
    # inside [0, 1] and around k / n (up to rounding: 10/10 gives hi = 1 - 1e-16)
    assert 0.0 <= lo <= k / n + 1e-12 and k / n - 1e-12 <= hi <= 1.0


def test_wilson_interval_default_level_is_95_percent():
    ref = stats.binomtest(3, 10).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = audit.wilson_interval(3, 10)
    assert lo == pytest.approx(ref.low, rel=1e-7) and hi == pytest.approx(ref.high, rel=1e-7)
    assert all(math.isnan(v) for v in audit.wilson_interval(0, 0))


def _scipy_spearman(x, y):
    """SciPy's rho, and the exact one-sided p-value from SciPy's permutation enumeration with
    the rank correlation computed, vectorised, from SciPy's ranks."""
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)

    def pearson_of_ranks(yy, axis=-1):
        a = rx - rx.mean()
        b = yy - yy.mean(axis=axis, keepdims=True)
        return (b @ a) / np.sqrt((a @ a) * np.sum(b * b, axis=axis))

    res = stats.permutation_test(
        (ry,),
        pearson_of_ranks,
        permutation_type="pairings",
        alternative="greater",
        n_resamples=np.inf,
        vectorized=True,
    )
    assert res.statistic == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    return res.statistic, res.pvalue


SERIES = [
    ([1, 2, 3, 4, 5, 6], [0, 2, 1, 3, 5, 4]),
    ([3.0, 1.0, 2.0, 5.0, 4.0], [10.0, 30.0, 20.0, 20.0, 50.0]),  # a tie in y
    ([1, 2, 3, 4, 5, 6, 7], [7, 1, 6, 2, 5, 3, 4]),
    ([1, 2, 3], [3, 1, 2]),
]


@pytest.mark.parametrize(("x", "y"), SERIES)
def test_spearman_exact_matches_scipy(x, y):
    rho, p = audit.spearman_permutation(x, y)
    ref_rho, ref_p = _scipy_spearman(x, y)
    assert rho == pytest.approx(ref_rho, abs=1e-12)
    assert p == pytest.approx(ref_p, abs=1e-12)


def test_spearman_sampled_null_is_close_to_the_exact_one_and_never_zero():
    x = np.arange(7)
    y = np.array([0, 2, 1, 3, 6, 4, 5])
    ref_rho, ref_p = _scipy_spearman(x, y)
    rho, p = audit.spearman_permutation(x, y, max_exact=5, n_resamples=4000, seed=3)
    assert rho == pytest.approx(ref_rho, abs=1e-12)
    # binomial sd of a 4000-draw estimate of p ~ 0.01 is ~0.0016
    assert p == pytest.approx(ref_p, abs=0.006)
    # the sampled p-value counts the observed ordering: (hits + 1) / (draws + 1) > 0
    rho, p = audit.spearman_permutation(np.arange(12), np.arange(12), max_exact=5, n_resamples=99)
    assert rho == pytest.approx(1.0) and p == pytest.approx(1 / 100)


def test_spearman_seed_and_resamples_are_used():
    x = np.arange(9)
    y = np.array([3, 0, 5, 1, 8, 2, 7, 4, 6])  # weakly correlated: p ~ 0.1, not 1/301
    a = audit.spearman_permutation(x, y, max_exact=5, n_resamples=300, seed=1)[1]
    b = audit.spearman_permutation(x, y, max_exact=5, n_resamples=300, seed=1)[1]
    assert a == b  # seeded
    assert a > 0.02
    # with 300 draws the p-value is a multiple of 1/301
    assert (a * 301) == pytest.approx(round(a * 301), abs=1e-9)


def test_spearman_exact_up_to_max_exact_points_then_sampled():
    x = np.arange(6)
    y = np.array([0, 2, 1, 3, 5, 4])
    _, ref_p = _scipy_spearman(x, y)
    # n == max_exact: still the exact null
    assert audit.spearman_permutation(x, y, max_exact=6)[1] == pytest.approx(ref_p, abs=1e-12)
    # by default 9 points are sampled with 20000 draws: p is a multiple of 1/20001, and at
    # least 1/20001 (the exact p of a perfect ordering would be 1/9! = 1/362880)
    rho, p = audit.spearman_permutation(np.arange(9), np.arange(9))
    assert rho == pytest.approx(1.0)
    assert p >= 1 / 20001 and p * 20001 == pytest.approx(round(p * 20001), abs=1e-6)


def test_wilson_upper_limit_never_exceeds_one():
    # without the clamp, rounding puts the upper limit of 20/20 just above 1 (and the lower
    # limit of 0/7 just below 0)
    assert all(audit.wilson_interval(n, n)[1] <= 1.0 for n in range(1, 100))
    assert all(audit.wilson_interval(0, n)[0] >= 0.0 for n in range(1, 100))


def test_spearman_refuses_too_few_points_and_constants():
    with pytest.raises(ValueError, match=">= 3 points"):
        audit.spearman_permutation([1, 2], [2, 1])
    with pytest.raises(ValueError, match="constant"):
        audit.spearman_permutation([1, 1, 1], [1, 2, 3])
    # three points is enough
    assert audit.spearman_permutation([1, 2, 3], [1, 2, 3])[1] == pytest.approx(1 / 6)


def test_absent_at_init_decides_against_gaussian_noise():
    archs = _archs()
    noise = {m: audit.gaussian_ratio(64 * int(m.split("-")[1][1:])) for m in MODELS}
    final = dict.fromkeys(MODELS, 40.0)
    row = audit.claim_absent_at_init(_traj(noise, final), archs)
    assert row["verdict"] == "reproduced"
    assert "Gaussian" in row["our_value"]
    inflated = {m: 3 * v for m, v in noise.items()}
    assert audit.claim_absent_at_init(_traj(inflated, final), archs)["verdict"] == "not reproduced"


def test_grows_with_size_verdicts():
    archs = _archs()
    size = archs.set_index("model")["params"]
    init = dict.fromkeys(MODELS, 6.0)
    up = {m: float(size[m]) for m in MODELS}
    down = {m: -float(size[m]) + 1e12 for m in MODELS}
    row = audit.claim_grows_with_size(_traj(init, up), archs)
    # 4 models in perfect order: exact one-sided p = 1/4! = 0.042 < 0.05
    assert row["verdict"] == "reproduced" and "p = 0.042" in row["uncertainty"]
    assert audit.claim_grows_with_size(_traj(init, down), archs)["verdict"] == "not reproduced"
    few = audit.claim_grows_with_size(_traj({"L2-d64-h2": 6.0}, {"L2-d64-h2": 9.0}), archs)
    assert few["verdict"] == "not testable on this data"
    assert "Fig. 3" not in few["paper_value"] and "~" in few["paper_value"]


def test_grows_with_size_counts_architectures_not_seed_replicates():
    archs = _archs().assign(architecture=lambda a: a["model"], seed=0, packing=False)
    size = archs.set_index("model")["params"]
    first = archs.iloc[0]
    # two more seeds of the smallest architecture and a packing model of it: 7 models, but
    # 4 architectures, so the exact p is still that of 4 points in order (1/24)
    extra = pd.DataFrame(
        [
            {**first, "model": f"{first.model}-s1", "seed": 1},
            {**first, "model": f"{first.model}-s2", "seed": 2},
            {**first, "model": f"{first.model}-packed", "packing": True},
        ]
    )
    archs = pd.concat([archs, extra], ignore_index=True)
    final = {m: float(size[m]) for m in MODELS}
    final |= {
        f"{first.model}-s1": final[first.model] + 3,
        f"{first.model}-s2": final[first.model] + 3,
    }
    final[f"{first.model}-packed"] = 1e15  # the largest: would break the order if counted
    row = audit.claim_grows_with_size(_traj(dict.fromkeys(final, 6.0), final), archs)
    assert row["verdict"] == "reproduced" and "p = 0.042" in row["uncertainty"]
    assert "over 4 architectures (seed replicates averaged" in row["our_value"]
    # the range shown is over architectures: the seeds' mean, not each seed
    assert f"final ratios {final[first.model] + 2:.1f}-" in row["our_value"]


def _results(target, r2_split, chance=0.1, lomo=0.2, n_perm=200):
    """A predictor table as ``evaluate`` writes it: the regressors' permutation R^2 all equal
    to ``chance``, so the null of the best regressor has 95th percentile ``chance``."""
    rows = []
    for proto, r2 in (("paper_split", r2_split), ("paper_cv5", r2_split - 0.05), ("lomo", lomo)):
        for model, value in (("RandomForest", r2), ("mean", -0.01)):
            rows.append(
                {"target": target, "model_type": model, "protocol": proto, "r2": value,
                 "chance_r2_q95": chance, "n_used": 30, "note": np.nan,
                 "chance_r2": json.dumps([chance] * n_perm), "null_scheme": "blocks",
                 "null_arrangements": 1e6, "seed": 0, "transforms": "ours",
                 "fits_used": "all"}
            )  # fmt: skip
    return pd.DataFrame(rows)


def _power(target, n_detected, n_replicates=20, protocol="paper_split", note=""):
    """A power table row: ``n_detected`` of ``n_replicates`` synthetic targets detected."""
    power = n_detected / n_replicates if not note else np.nan
    return pd.DataFrame(
        [{"fits_used": "all", "transforms": "ours", "target": target, "protocol": protocol,
          "power": power, "power_lo": max(power - 0.2, 0), "power_hi": min(power + 0.1, 1),
          "n_detected": n_detected, "n_replicates": n_replicates, "note": note}]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("key", "target", "r2", "chance", "verdict"),
    [
        ("K_predictable", "K", 0.8, 0.1, "reproduced"),
        ("K_predictable", "K", 0.4, 0.1, "not reproduced"),
        ("K_predictable", "K", 0.6, 0.7, "not reproduced"),
        ("lam_predictable", "lam", 0.4, 0.1, "reproduced"),
        ("gam_not_predictable", "gam", 0.1, 0.2, "reproduced"),
        ("gam_not_predictable", "gam", 0.9, 0.2, "not reproduced"),
    ],
)
def test_predictability_rules(key, target, r2, chance, verdict):
    # with a powered protocol (19/20 synthetic targets detected)
    row = audit.claim_predictable(key, _results(target, r2, chance), power=_power(target, 19))
    assert row["verdict"] == verdict
    t3 = reference.table("table3_test_r2").loc[target]
    assert f"{t3.max():.3f}" in row["paper_value"]
    assert "leave-one-model-out" in row["reading"]
    assert "200 block permutations" in row["uncertainty"]


@pytest.mark.parametrize(
    ("power", "verdict"),
    [
        (None, "inconclusive"),  # no power check
        (_power("gam", 3), "inconclusive"),  # 3/20: the protocol sees nothing at this n
        (_power("gam", 15), "inconclusive"),  # 75 % < 80 %
        (_power("gam", 0, note="only 8 usable layers (< 10)"), "inconclusive"),
        (_power("gam", 16), "reproduced"),  # 80 %
        (_power("gam", 20, protocol="lomo"), "inconclusive"),  # another protocol's power
    ],
)
def test_not_predictable_needs_the_power_check(power, verdict):
    # the finding of the audit: a best split R^2 far below 0 "reproduced" gam's null
    results = _results("gam", -3056.0, chance=0.3)
    row = audit.claim_predictable("gam_not_predictable", results, power=power)
    assert row["verdict"] == verdict
    if power is None or (power["protocol"] != "paper_split").all():
        assert "no power check" in row["uncertainty"]
    elif np.isfinite(power["power"].iloc[0]):
        n = int(power["n_detected"].iloc[0])
        assert f"{n}/20 replicates" in row["uncertainty"]
    # a weak R^2 above chance is not predictable only with power, too
    weak = _results("gam", 0.2, chance=0.1)
    assert audit.claim_predictable("gam_not_predictable", weak, power=power)["verdict"] == verdict


def test_a_silent_protocol_without_power_does_not_refute_predictability():
    silent = _results("K", 0.05, chance=0.2)
    assert audit.claim_predictable("K_predictable", silent)["verdict"] == "inconclusive"
    row = audit.claim_predictable("K_predictable", silent, power=_power("K", 20))
    assert row["verdict"] == "not reproduced"


def test_the_chance_level_is_the_null_of_the_best_regressor():
    # two regressors: the best one's own null is low, but the other reaches 0.6 on the
    # same permutations: the maximum over them is the chance level of the best R^2
    results = _results("K", 0.55, chance=0.1)
    other = results[results["model_type"] == "RandomForest"].assign(
        model_type="Ridge", r2=0.2, chance_r2=json.dumps([0.6] * 200)
    )
    row = audit.claim_predictable(
        "K_predictable", pd.concat([results, other]), power=_power("K", 20)
    )
    assert "95th percentile 0.60" in row["uncertainty"]
    assert row["verdict"] == "not reproduced"


def test_the_split_spread_is_reported():
    splits = pd.DataFrame(
        [{"fits_used": "all", "transforms": "ours", "target": "K", "model_type": "best",
          "n_repeats": 20, "r2_median": 0.7, "r2_q05": -0.4, "r2_q95": 0.9}]
    )  # fmt: skip
    row = audit.claim_predictable("K_predictable", _results("K", 0.8), splits=splits)
    assert (
        "20 repeated 80/20 splits: best R^2 median 0.70 (5-95%: -0.40 to 0.90)"
        in (row["uncertainty"])
    )


def test_an_old_predictor_table_is_not_testable():
    old = _results("K", 0.8).drop(columns=["chance_r2"])
    row = audit.claim_predictable("K_predictable", old)
    assert row["verdict"] == "not testable on this data" and "predates" in row["our_value"]


def test_predictability_without_results_is_not_testable():
    row = audit.claim_predictable("K_predictable", None)
    assert row["verdict"] == "not testable on this data" and row["our_value"].startswith("not")
    infeasible = _results("K", np.nan).assign(note="too few models")
    row = audit.claim_predictable("K_predictable", infeasible)
    assert "too few models" in row["our_value"]


def test_driver_claim_reads_the_rank():
    imp = pd.DataFrame(
        {"feature": ["H_over_d", "l_times_L", "log_d"], "importance": [0.5, 0.2, 0.1],
         "importance_std": [0.05, 0.02, 0.01], "rank": [1, 2, 3]}
    )  # fmt: skip
    assert audit.claim_driver("Hd_drives_K", {"K": imp})["verdict"] == "reproduced"
    row = audit.claim_driver("lL_drives_lam", {"lam": imp})
    assert row["verdict"] == "not reproduced" and "ranked 2 of 3" in row["our_value"]
    assert audit.claim_driver("Hd_drives_K", None)["verdict"] == "not testable on this data"


def test_pretrained_claim_needs_all_three_signatures():
    rows = []
    for layer in range(1, 7):
        for seq in range(2):
            big = layer >= 3
            rows.append(
                {"layer": layer, "sequence": seq, "top1": 2000.0 if big else 5.0,
                 "median": 0.1 + 0.01 * seq, "top1_position": 0 if big else 7,
                 "top1_channel": 507 if big else layer}
            )  # fmt: skip
    summary = layer_summary(pd.DataFrame(rows))
    assert summary.loc[3, "ratio"] == pytest.approx(2000 / 0.105)
    assert summary.loc[3, "position0"] == 1.0 and summary.loc[3, "channel"] == 507
    row = audit.claim_pretrained_first_token(summary)
    assert row["verdict"] == "reproduced" and "507" in row["our_value"]
    weak = summary.assign(top1=summary["top1"] / 100, ratio=summary["ratio"] / 100)
    assert audit.claim_pretrained_first_token(weak)["verdict"] == "not reproduced"
    # one sequence of two with its top-1 at the second token: position 0 in half of the
    # sequences only, not most; the row says where each sits
    rows[-1]["top1_position"] = 1  # layer 6, sequence 1
    moved = layer_summary(pd.DataFrame(rows))
    assert moved.loc[6, "positions"] == "0: 1, 1: 1" and moved.loc[5, "positions"] == "0: 2"
    peak6 = moved.assign(top1=moved["top1"] * (moved.index == 6) + 1.0)
    peak6["ratio"] = peak6["top1"] / peak6["median"]
    row = audit.claim_pretrained_first_token(peak6)
    assert row["verdict"] == "not reproduced"
    assert (
        "position 0 in 50% of sequences (top-1 position: sequences 0: 1, 1: 1)"
        in (row["our_value"])
    )
    # two of three at position 0: most sequences (Sun et al.'s delimiter token may hold it)
    third = [{**r, "sequence": 2} for r in rows if r["sequence"] == 0]
    most = layer_summary(pd.DataFrame(rows + third))
    most = most.assign(top1=most["top1"] * (most.index == 6) + 1.0)
    most["ratio"] = most["top1"] / most["median"]
    assert most.loc[6, "position0"] == pytest.approx(2 / 3)
    row = audit.claim_pretrained_first_token(most)
    assert row["verdict"] == "reproduced" and "sequences 0: 2, 1: 1" in row["our_value"]
    assert "more than half" in row["test"]


def _fits(n_models: int = 10):
    """A fits table with a known answer: edges peak early, middle layers rise (both calls)."""
    rows = []
    for i in range(n_models):
        m, L = f"L{3 + i % 4}-d64-h2-s{i}", 3 + i % 4
        for layer in range(1, L + 1):
            edge = layer in (1, L)
            regime = "early_peak" if edge else "log_rise"
            for hyp, aic, r2 in (("eq9", -50, 0.99), ("step1", -10, 0.5), ("step2", -30, 0.9)):
                for proc in ("ours", "paper"):
                    rows.append(
                        {"model": m, "layer": layer, "n_layers": L, "relative_depth": layer / L,
                         "hypothesis": hyp, "procedure": proc, "status": "ok", "aic": aic,
                         "r2": r2, "r2_all": r2 - (0.01 if proc == "paper" else 0.0),
                         "t_peak": 50.0 if edge else 1e6,
                         "t_peak_boot_lo": 1.0, "t_peak_boot_hi": 2.0, "t_peak_delta_lo": 1.0,
                         "t_peak_delta_hi": 2.0, "regime": regime, "mf_regime": regime,
                         "t_peak_lo": 40.0 if edge else 2e5, "t_peak_hi": 60.0 if edge else np.inf,
                         "mf_peak_lo": 0.0, "mf_peak_hi": np.inf}
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_fit_claims_on_a_known_table():
    fits = _fits()
    edges = audit.claim_early_peak_edges(fits)
    assert edges["verdict"] == "reproduced"
    assert (
        "first layers: 10 of 10" in edges["our_value"]
        and "last layers: 10 of 10" in edges["our_value"]
    )
    middle = audit.claim_log_rise_middle(fits)
    assert middle["verdict"] == "reproduced" and "23 of 23" in middle["our_value"]
    r2 = audit.claim_eq9_fits(fits)
    assert r2["verdict"] == "reproduced" and "mean R^2 0.990" in r2["our_value"]
    assert "paper's procedure alone 0.980" in r2["reading"]
    aic = audit.claim_eq9_beats_steps(fits)
    assert aic["verdict"] == "reproduced" and "ours: lowest AIC in 43 of 43" in aic["our_value"]
    flipped = fits.assign(regime=fits["regime"].map({"early_peak": "log_rise",
                                                     "log_rise": "early_peak"}))  # fmt: skip
    flipped["mf_regime"] = flipped["regime"]
    assert audit.claim_early_peak_edges(flipped)["verdict"] == "not reproduced"
    assert audit.claim_log_rise_middle(flipped)["verdict"] == "not reproduced"


def test_a_regime_counts_only_where_eq9_and_the_model_free_call_agree():
    fits = _fits()
    fits["mf_regime"] = "undetermined"  # the model-free call decides nothing
    row = audit.claim_early_peak_edges(fits)
    assert row["verdict"] == "not testable on this data"
    disagree = _fits().assign(mf_regime="log_rise")
    row = audit.claim_early_peak_edges(disagree)
    assert row["verdict"] == "not testable on this data"
    assert "20 where the calls disagree" in row["our_value"]
    agreed = audit.agreed_regimes(disagree)
    assert (agreed.loc[agreed.regime == "early_peak", "agreed"] == "undetermined").all()
    # both call it an early peak, but the model-free peak lies elsewhere: not agreed
    elsewhere = _fits().assign(mf_peak_lo=1e5, mf_peak_hi=1.4e5)
    agreed = audit.agreed_regimes(elsewhere)
    assert (agreed.loc[agreed.regime == "early_peak", "agreed"] == "undetermined").all()
    assert (agreed.loc[agreed.regime == "log_rise", "agreed"] == "log_rise").all()


def test_too_few_layers_is_inconclusive_not_untestable():
    row = audit.claim_early_peak_edges(_fits(3))  # 3 of 3: the Wilson interval reaches 44 %
    assert row["verdict"] == "inconclusive"
    assert (
        audit.majority(3, 3) == "inconclusive"
        and audit.majority(0, 0) == "not testable on this data"
    )


def test_eq9_fits_tests_the_floor_and_counts_failures():
    fits = _fits()
    low = fits.copy()
    hit = (low.model == low.model.iloc[0]) & (low.layer == 1) & low.hypothesis.isin(["eq9", "eq14"])
    low.loc[hit, "r2_all"] = 0.80
    row = audit.claim_eq9_fits(low)
    assert row["verdict"] == "not reproduced" and "1 below 0.93" in row["our_value"]
    failed = fits.copy()
    many = failed.layer == 2  # one layer per model: 10 of 43 layers, over 10 %
    failed.loc[many, "status"] = "not_converged"
    row = audit.claim_eq9_fits(failed)
    assert (
        row["verdict"] == "inconclusive"
        and "10 of 43 layers without a converged fit" in row["our_value"]
    )


def test_procedures_that_disagree_are_inconclusive():
    fits = _fits()
    paper = fits.procedure == "paper"
    fits.loc[paper & (fits.hypothesis == "eq9"), "aic"] = 0.0  # the paper's Eq. 9 loses
    row = audit.claim_eq9_beats_steps(fits)
    assert row["verdict"] == "inconclusive"
    assert audit.consensus("reproduced", "not reproduced") == "inconclusive"
    assert audit.all_of("reproduced", "inconclusive") == "inconclusive"
    assert audit.all_of("reproduced", "not reproduced") == "not reproduced"


def test_every_verdict_word_is_defined():
    assert set(audit.VERDICT_MEANINGS) == set(audit.VERDICTS)
    assert all(len(v) > 20 for v in audit.VERDICT_MEANINGS.values())


def test_build_ledger_has_every_claim_and_no_empty_cell():
    archs = _archs()
    traj = _traj(dict.fromkeys(MODELS, 6.0), {m: 10.0 + i for i, m in enumerate(MODELS)})
    out = audit.build_ledger(traj, archs)  # no fits, no predictor, no pretrained
    claims = reference.entry("claims")["values"]
    assert list(out["key"]) == list(claims)
    assert list(out.columns) == list(audit.LEDGER_COLUMNS)
    assert set(out["verdict"]) <= set(audit.VERDICTS)
    assert not out.isna().any().any()
    assert (out.astype(str).apply(lambda s: s.str.strip().str.len()) > 0).all().all()
    assert (out.set_index("key").loc["eq9_fits", "verdict"]) == "not testable on this data"
    full = audit.build_ledger(traj, archs, fits=_fits())
    assert full.set_index("key").loc["eq9_fits", "verdict"] == "reproduced"


def test_write_ledger_is_atomic_csv(tmp_path):
    archs = _archs()
    traj = _traj(dict.fromkeys(MODELS, 6.0), dict.fromkeys(MODELS, 30.0))
    out = audit.build_ledger(traj, archs)
    path = registry.write(out, "ledger.csv", tmp_path, "suite")
    assert path == tmp_path / "suite" / "ledger.csv"
    back = pd.read_csv(path)
    assert list(back["key"]) == list(out["key"])
    assert not list(path.parent.glob(".*tmp"))


def test_constant_values_make_the_rank_test_untestable():
    with pytest.raises(ValueError, match="constant"):
        audit.spearman_permutation([1, 2, 3], [4, 4, 4])
    archs = _archs()
    traj = _traj(dict.fromkeys(MODELS, 6.0), dict.fromkeys(MODELS, 30.0))
    row = audit.claim_grows_with_size(traj, archs)
    assert row["verdict"] == "not testable on this data" and "constant" in row["our_value"]


def test_predictability_uses_all_fits_like_the_paper_and_reports_identified():
    both = pd.concat(
        [
            _results("K", 0.8).assign(fits_used="all"),
            _results("K", np.nan).assign(fits_used="identified", note="only 4 usable layers"),
        ]
    )
    row = audit.claim_predictable("K_predictable", both)
    assert row["verdict"] == "reproduced"
    assert "every fit, identified or not" in row["reading"]
    assert "identified fits only: only 4 usable layers" in row["reading"]


def test_majority_needs_the_whole_interval_on_one_side():
    assert audit.majority(9, 10) == "reproduced"  # Wilson 60%-98%
    assert audit.majority(6, 10) == "inconclusive"  # 31%-83% spans 50%
    assert audit.majority(1, 10) == "not reproduced"  # 2%-40%
    fits = _fits()
    few = fits[fits["model"] == fits["model"].iloc[0]]  # one first, one last layer: 1/1 each
    row = audit.claim_early_peak_edges(few)
    assert row["verdict"] == "inconclusive" and "first 1/1" in row["uncertainty"]


def test_a_driver_needs_a_model_with_skill():
    imp = pd.DataFrame(
        {"feature": ["H_over_d", "log_d"], "importance": [0.5, 0.1],
         "importance_std": [0.05, 0.01], "rank": [1, 2]}
    )  # fmt: skip
    imp.attrs.update(model_type="RandomForest", protocol="paper_cv5", fits_used="all")
    skilled = _results("K", 0.8, chance=0.1).assign(fits_used="all")
    assert audit.claim_driver("Hd_drives_K", {"K": imp}, skilled)["verdict"] == "reproduced"
    unskilled = _results("K", 0.05, chance=0.1).assign(fits_used="all")
    row = audit.claim_driver("Hd_drives_K", {"K": imp}, unskilled)
    assert row["verdict"] == "not testable on this data"
    assert "better than the mean and chance" in row["our_value"]


def test_a_negative_r2_is_no_skill_even_above_chance():
    imp = pd.DataFrame({"feature": ["l_times_L"], "importance": [0.2], "importance_std": [0.1],
                        "rank": [1]})  # fmt: skip
    imp.attrs.update(model_type="RandomForest", protocol="paper_cv5")
    worse = _results("lam", -0.03, chance=-0.2)
    assert (
        audit.claim_driver("lL_drives_lam", {"lam": imp}, worse)["verdict"]
        == "not testable on this data"
    )


def test_variability_is_averaged_over_training_and_compared_two_sided():
    def traj(cv_a, cv_b):
        rows = [
            {"model": m, "layer": layer, "step": step, "cv_pct": 50.0 if step == 0 else cv}
            for m, cv in (("a", cv_a), ("b", cv_b))
            for layer in (1, 2)
            for step in (0, 10, 100, 1000)
        ]
        return pd.DataFrame(rows)

    inside = audit.claim_variability(traj(5.0, 6.0))  # step 0's 50 % is left out
    assert inside["verdict"] == "reproduced"
    assert "mean CV 5.50% over 2 models" in inside["our_value"]
    assert "2 of 2 inside the band" in inside["our_value"]
    assert "3 checkpoints" in inside["uncertainty"]
    below = audit.claim_variability(traj(1.0, 2.0))  # identical first tokens: too little spread
    above = audit.claim_variability(traj(9.0, 12.0))
    assert below["verdict"] == above["verdict"] == "not reproduced"
    assert "4.22-7.00%" in below["test"]
    empty = audit.claim_variability(traj(np.nan, np.nan))
    assert empty["verdict"] == "not testable on this data"


def test_ledger_html_escapes_every_text_cell_colours_verdicts_and_links_chapters():
    rows = [
        {c: f"{c} <b>p < 0.05</b> & more" for c in audit.LEDGER_COLUMNS}
        | {"verdict": verdict, "chapter": chapter, "key": f"k{i}"}
        for i, (verdict, chapter) in enumerate(
            zip(
                audit.VERDICTS,
                ("04_fitting", "09_regrowth", "06_claims_ledger", "03_measuring"),
                strict=True,
            )
        )
    ]
    html = audit.ledger_html(pd.DataFrame(rows, columns=list(audit.LEDGER_COLUMNS)), name="claims")
    assert '<table id="T_claims" data-ledger="claims">' in html
    assert "<b>" not in html and "k0" not in html  # no raw markup; the key is left out
    for column in ("claim", "our_value", "reading"):
        assert f"{column} &lt;b&gt;p &lt; 0.05&lt;/b&gt; &amp; more" in html
    assert '<a href="09_regrowth.html">09</a>' in html
    assert '<a href="04_fitting.html">04</a>' in html
    for colour in audit.VERDICT_COLOURS.values():
        assert f"background-color: {colour}" in html
    assert "background-color: white" not in html


def test_ledger_html_is_the_same_from_one_call_to_the_next_and_names_must_be_html_ids():
    ledger = pd.DataFrame(
        [{c: "x" for c in audit.LEDGER_COLUMNS} | {"verdict": audit.VERDICTS[0]}],
        columns=list(audit.LEDGER_COLUMNS),
    )
    first = audit.ledger_html(ledger, name="regrowth")
    assert first == audit.ledger_html(ledger, name="regrowth")  # no random ids
    assert first != audit.ledger_html(ledger, name="claims")
    for bad in ("", "two words", "1st", 'a"b'):
        with pytest.raises(ValueError, match="not a valid HTML id"):
            audit.ledger_html(ledger, name=bad)
