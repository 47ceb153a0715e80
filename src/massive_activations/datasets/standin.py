"""A synthetic stand-in of the paper's release: its shape, none of its numbers.

The release (the book's page "Reading the paper", section on the released statistics) holds
``pythia_{size}/stats/exp2_pythia_{size}_step{N}`` files: a Python literal of shape
``10 x 4 x L`` (sequences; top-1, top-2, top-3, median; layers).  :func:`write_standin`
writes a folder laid out the same way, for the tests, the benchmarks and the smoke build of
the Pythia edition, where the release cannot be downloaded:

* the nine Pythia models with their real layer counts and the release's checkpoint counts per
  model (both from the reference file: ``pythia_architectures``, ``release_checkpoints``), the
  checkpoints chosen among Pythia's 154 by :func:`standin_steps` (the release does not list
  which it holds);
* one malformed file where the release has one (``pythia_1b`` step 0, truncated so that it
  does not parse);
* every value rounded to float16 and written exactly;
* trajectories that follow Eq. 9 (:func:`standin_curves`): the first 1-3 and last 1-2 layers
  peak early and decay (:func:`layer_regimes`), the middle layers rise logarithmically, to
  ratios of about 10^2 (14m) to 10^3.6 (12b) times the median; per sequence a 4-7 %
  variation (part of it persistent per sequence), per checkpoint a noise factor shared by
  every layer and sequence of the model (3 %), and per (checkpoint, layer) 1.5 %.

Deterministic given ``seed``.  The folder, and each model folder in it, holds the marker file
:data:`SYNTHETIC_MARKER`; :func:`is_synthetic` detects it, and the importer
(:mod:`massive_activations.datasets.release`) records ``synthetic: true`` and flags every
table it reads from such a folder.  A stand-in is never committed as data and never shown as
the paper's results.

Command line::

    python -m massive_activations.datasets.standin OUT [--sizes 14m 1b] [--checkpoints N]
        [--seed 0] [--smoke] [--overwrite]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from massive_activations import reference
from massive_activations.curve import eq9, peak_x
from massive_activations.schedule import PYTHIA_FINAL_STEP, pythia_steps

__all__ = [
    "N_SEQUENCES",
    "SMOKE",
    "SYNTHETIC_MARKER",
    "StandIn",
    "is_synthetic",
    "layer_regimes",
    "main",
    "release_counts",
    "standin_curves",
    "standin_stats",
    "standin_steps",
    "write_standin",
]

#: Marker file of a stand-in folder (and of each of its model folders).
SYNTHETIC_MARKER = "SYNTHETIC_STANDIN.txt"
#: Evaluation sequences per file, as in the release.
N_SEQUENCES = 10
#: A small stand-in for smoke builds: three models (one with the malformed file), 16
#: checkpoints each.
SMOKE = {"sizes": ("14m", "70m", "1b"), "checkpoints": 16}

_MARKER_TEXT = (
    "SYNTHETIC STAND-IN: NOT THE PAPER'S DATA.\n\n"
    "Written by massive_activations.datasets.standin (seed {seed}) in the layout of the\n"
    "release Aimpoint-Digital/pythia-massive-activations, with made-up numbers that follow\n"
    "Eq. 9. For tests, benchmarks and smoke builds only: never commit it as data and never\n"
    "show it as the paper's results. Every table read from it is flagged synthetic.\n"
)


def _arch() -> dict[str, tuple[int, int]]:
    """``{size: (n_layers, n_params)}`` of the nine Pythia models, sizes lower-case."""
    t = reference.table("pythia_architectures")
    return {s.lower(): (int(r["n_layers"]), int(r["n_params"])) for s, r in t.iterrows()}


def _size(size: str) -> str:
    key = str(size).lower().removeprefix("pythia-").removeprefix("pythia_")
    if key not in _arch():
        raise ValueError(f"Unknown Pythia size {size!r}; use one of {', '.join(_arch())}.")
    return key


def release_counts() -> dict[str, int]:
    """Well-formed files per model in the release (reference ``release_checkpoints``)."""
    values = reference.table("release_checkpoints")["value"]
    return {s.lower(): int(n) for s, n in values.items()}


def _malformed() -> dict[str, list[int]]:
    entry = reference.entry("release_checkpoints").get("malformed") or {}
    return {s.lower(): [int(x) for x in steps] for s, steps in entry.items()}


def standin_steps(n: int, exclude: Sequence[int] = ()) -> list[int]:
    """``n`` checkpoints of Pythia's 154: about 30 % from step 0 to 512, the rest from
    1,000 to 143,000, evenly spaced in each part, with 143,000 always included.

    Parameters
    ----------
    n : int
        Number of checkpoints (2 to the number available).
    exclude : sequence of int
        Steps not to take (the malformed file's step).
    """
    avail = [s for s in pythia_steps() if s not in set(exclude)]
    if not 2 <= n <= len(avail):
        raise ValueError(f"A stand-in model needs 2 to {len(avail)} checkpoints; got {n}.")
    early = [s for s in avail if s < 1000]
    late = [s for s in avail if s >= 1000]
    n_early = min(len(early), max(1, round(0.3 * n)), n - 1)

    def spread(xs: list[int], k: int) -> list[int]:
        return [xs[i] for i in np.round(np.linspace(0, len(xs) - 1, k)).astype(int)]

    return sorted(spread(early, n_early) + spread(late, n - n_early))


def layer_regimes(n_layers: int) -> list[str]:
    """The stand-in's regime of layers 1..L: ``"early_peak"`` for the first 1-3 and the
    last 1-2 layers (more for deeper models), ``"log_rise"`` for the others."""
    first = 1 if n_layers <= 6 else 2 if n_layers <= 12 else 3
    last = 1 if n_layers <= 16 else 2
    return [
        "early_peak" if layer <= first or layer > n_layers - last else "log_rise"
        for layer in range(1, n_layers + 1)
    ]


def _rng(seed: int, size: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(size.encode()), stream])


def _scale(size: str) -> float:
    """Typical largest ratio of a model: 10^2 for the smallest to 10^3.6 for the largest,
    log-linear in the parameter count."""
    params = {s: p for s, (_, p) in _arch().items()}
    lo, hi = np.log10(min(params.values())), np.log10(max(params.values()))
    return float(10 ** (2.0 + 1.6 * (np.log10(params[size]) - lo) / (hi - lo)))


def standin_curves(size: str, seed: int = 0) -> dict[int, dict[str, float]]:
    """The Eq. 9 parameters (``A, lam, gam, t0, K``; steps in Pythia's units) of each layer.

    Early-peak layers peak between about 10k and 45k steps; log-rise layers are still
    rising at step 143,000.  ``t0`` is within 1 % of 1 so that the ratio at step 0 is close
    to ``K`` (4-12): massive activations are absent at initialisation.
    """
    size = _size(size)
    n_layers = _arch()[size][0]
    rng = _rng(seed, size, 0)
    scale = _scale(size)
    curves = {}
    for layer, regime in enumerate(layer_regimes(n_layers), start=1):
        K = rng.uniform(4.0, 12.0)
        if regime == "early_peak":
            lam, gam = rng.uniform(0.2, 0.4), rng.uniform(0.6e-4, 2e-4)
            height = scale * rng.uniform(0.4, 1.0)
            x = peak_x(lam)
        else:
            lam, gam = rng.uniform(0.05, 0.12), rng.uniform(1.5e-5, 3e-5)
            depth = np.sin(np.pi * layer / (n_layers + 1))
            height = scale * (0.3 + 0.7 * depth) * rng.uniform(0.8, 1.2)
            x = gam * PYTHIA_FINAL_STEP + 1.0
        A = (height - K) / (np.exp(-lam * x) * np.log(x))
        t0 = 1.0 + rng.uniform(0.0, 1.0) * min(0.01, 2.0 * K / A)
        curves[layer] = {"A": A, "lam": lam, "gam": gam, "t0": t0, "K": K}
    return curves


def standin_stats(size: str, steps: Sequence[int], seed: int = 0) -> np.ndarray:
    """The stand-in's statistics of one model: shape ``(steps, 10, 4, L)``, float16 values.

    Per layer ``l`` and step ``t`` the median of sequence ``s`` is ``m_l(t)`` (0.08-0.5,
    drifting over training) times a 3 % persistent and a 2 % fresh factor; ``top1`` is
    ``f_l(t) * c(t) * j_l(t) * mean_s(median) * (1 + cv e)``, with ``f_l`` the layer's Eq. 9
    curve, ``c(t)`` the checkpoint's shared factor (3 %), ``j_l(t)`` a (checkpoint, layer)
    factor (1.5 %) and ``e`` standard normal (clipped at 4, 30 % of its variance persistent
    per sequence), so the ratio of means follows ``f_l``; ``top2`` and ``top3`` are 60-98 %
    and 85-100 % of the value above them.  Then everything is rounded to float16 (rounding
    keeps ``top1 >= top2 >= top3 >= median``).
    """
    size = _size(size)
    n_layers = _arch()[size][0]
    curves = standin_curves(size, seed)
    rng = _rng(seed, size, 1)
    t = np.asarray(steps, dtype=float)
    n_t, n_s = t.size, N_SEQUENCES
    f = np.stack([eq9(t, **curves[la]) for la in range(1, n_layers + 1)], axis=1)
    shared = np.exp(0.03 * rng.standard_normal((n_t, 1)))
    jitter = np.exp(0.015 * rng.standard_normal((n_t, n_layers)))
    ratio = f * shared * jitter  # (t, L)

    base = rng.uniform(0.08, 0.5, n_layers)
    drift = 1.0 + rng.uniform(-0.3, 0.5, n_layers) * np.log1p(t / 1000.0)[:, None] / np.log1p(
        PYTHIA_FINAL_STEP / 1000.0
    )
    persistent = 1.0 + 0.03 * rng.standard_normal((1, n_s, n_layers))
    fresh = 1.0 + 0.02 * np.clip(rng.standard_normal((n_t, n_s, n_layers)), -4, 4)
    median = (base * drift)[:, None, :] * persistent * fresh  # (t, s, L)

    cv = rng.uniform(0.04, 0.07)
    e = np.sqrt(0.3) * rng.standard_normal((1, n_s, n_layers))
    e = np.clip(e + np.sqrt(0.7) * rng.standard_normal((n_t, n_s, n_layers)), -4, 4)
    top1 = ratio[:, None, :] * median.mean(axis=1, keepdims=True) * (1.0 + cv * e)
    top2 = top1 * rng.uniform(0.6, 0.98, top1.shape)
    top3 = top2 * rng.uniform(0.85, 0.999, top1.shape)
    stats = np.stack([top1, top2, top3, median], axis=2)  # (t, s, 4, L)
    stats = stats.astype(np.float16).astype(np.float64)
    ordered = (np.diff(stats, axis=2) <= 0).all() and (stats[:, :, 3] > 0).all()
    if not ordered or not np.isfinite(stats).all():
        raise AssertionError(f"stand-in statistics of {size} are not ordered or not finite")
    return stats


def _literal(stats: np.ndarray) -> str:
    """One file's text: a nested list, each float written exactly (its shortest repr)."""
    seqs = []
    for seq in stats:
        rows = ["[" + ", ".join(repr(float(v)) for v in row) + "]" for row in seq]
        seqs.append("[" + ",\n  ".join(rows) + "]")
    return "[" + ",\n ".join(seqs) + "]\n"


@dataclass
class StandIn:
    """What :func:`write_standin` wrote.

    Attributes
    ----------
    folder : Path
    seed : int
    steps : dict of str to list of int
        Well-formed checkpoints per model (``"pythia-14m"``, ...).
    n_layers : dict of str to int
    files : list of Path
        Every ``exp2_*`` file, the malformed ones included.
    malformed : list of Path
    """

    folder: Path
    seed: int
    steps: dict[str, list[int]] = field(default_factory=dict)
    n_layers: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    malformed: list[Path] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Rows of the activation table the well-formed files make (model, step, layer,
        sequence)."""
        return N_SEQUENCES * sum(len(s) * self.n_layers[m] for m, s in self.steps.items())

    @property
    def n_layer_rows(self) -> int:
        """(model, checkpoint, layer) rows, as the reference's ``total_rows`` counts them."""
        return self.n_rows // N_SEQUENCES

    @property
    def bytes(self) -> int:
        """Total size of the ``exp2_*`` files."""
        return sum(p.stat().st_size for p in self.files)

    def summary(self) -> str:
        """One line per model and a total."""
        lines = [
            f"{m}: {self.n_layers[m]} layers, {len(s)} checkpoints ({s[0]}..{s[-1]})"
            for m, s in self.steps.items()
        ]
        lines.append(
            f"{len(self.steps)} models, {sum(self.n_layers.values())} layers, "
            f"{len(self.files)} files ({len(self.malformed)} malformed), "
            f"{self.n_rows:,} table rows, {self.bytes / 1e6:.1f} MB in {self.folder}"
        )
        return "\n".join(lines)


def _checkpoints_of(size: str, checkpoints) -> list[int]:
    bad = _malformed().get(size, [])
    if checkpoints is None:
        spec = release_counts()[size]
    elif isinstance(checkpoints, Mapping):
        spec = checkpoints.get(size, checkpoints.get(f"pythia-{size}"))
        if spec is None:
            raise ValueError(f"checkpoints has no entry for {size!r}: give one per size.")
    else:
        spec = checkpoints
    if isinstance(spec, int | np.integer):
        return standin_steps(int(spec), exclude=bad)
    steps = sorted({int(s) for s in spec})
    unknown = sorted(set(steps) - set(pythia_steps()))
    if unknown:
        raise ValueError(f"Steps {unknown} of {size} are not Pythia checkpoints.")
    return steps


def is_synthetic(path: str | Path) -> bool:
    """Whether ``path`` is (inside) a stand-in: the marker in it, above it or below it."""
    path = Path(path).absolute()
    folder = path if path.is_dir() else path.parent
    if any((p / SYNTHETIC_MARKER).is_file() for p in (folder, *folder.parents)):
        return True
    return folder.is_dir() and next(folder.rglob(SYNTHETIC_MARKER), None) is not None


def write_standin(
    folder: str | Path,
    *,
    sizes: Sequence[str] | None = None,
    checkpoints: int | Sequence[int] | Mapping | None = None,
    seed: int = 0,
    malformed: bool = True,
    overwrite: bool = False,
) -> StandIn:
    """Write a stand-in of the release into ``folder`` (all at once: complete or absent).

    Parameters
    ----------
    folder : str or Path
        Where to write; must not exist, or be empty, or (with ``overwrite``) be a stand-in.
    sizes : sequence of str, optional
        Pythia sizes (``"14m"``, ``"pythia-1b"``); default all nine.
    checkpoints : int, sequence of int or mapping, optional
        Checkpoints per model: default the release's count (:func:`release_counts`); an
        int: that many (:func:`standin_steps`); steps; or ``{size: int or steps}``.
    seed : int, default 0
    malformed : bool, default True
        Also write the release's malformed file(s) (``pythia_1b`` step 0), when the model
        is among ``sizes``.
    overwrite : bool, default False
        Replace an existing stand-in (never a folder without the marker).

    Returns
    -------
    StandIn
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        if not (overwrite and (folder / SYNTHETIC_MARKER).is_file()):
            raise FileExistsError(
                f"{folder} exists and is not empty: write the stand-in into a new folder"
                + (
                    ", or pass overwrite=True (--overwrite) to replace this stand-in."
                    if (folder / SYNTHETIC_MARKER).is_file()
                    else " (it holds no stand-in marker, so it is never overwritten)."
                )
            )
    keys = [_size(s) for s in (sizes or _arch())]
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    out = StandIn(folder=folder, seed=int(seed))
    written: list[Path] = []
    try:
        marker = _MARKER_TEXT.format(seed=seed)
        tmp.mkdir(parents=True)
        (tmp / SYNTHETIC_MARKER).write_text(marker)
        for size in keys:
            steps = _checkpoints_of(size, checkpoints)
            stats_dir = tmp / f"pythia_{size}" / "stats"
            stats_dir.mkdir(parents=True)
            (stats_dir.parent / SYNTHETIC_MARKER).write_text(marker)
            stats = standin_stats(size, steps, seed)
            for step, values in zip(steps, stats, strict=True):
                path = stats_dir / f"exp2_pythia_{size}_step{step}"
                path.write_text(_literal(values))
                written.append(path)
            for step in _malformed().get(size, []) if malformed else []:
                text = _literal(standin_stats(size, [step], seed)[0])
                path = stats_dir / f"exp2_pythia_{size}_step{step}"
                path.write_text(text[: len(text) // 2])  # truncated: does not parse
                written.append(path)
                out.malformed.append(folder / path.relative_to(tmp))
            out.steps[f"pythia-{size}"] = steps
            out.n_layers[f"pythia-{size}"] = _arch()[size][0]
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.files = sorted(folder / p.relative_to(tmp) for p in written)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a stand-in and print its shape (exit 2 on bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m massive_activations.datasets.standin",
        description="Write a synthetic stand-in of the paper's release (never the paper's data).",
    )
    parser.add_argument("out", type=Path, help="folder to write")
    parser.add_argument("--sizes", nargs="+", help="Pythia sizes (default: all nine)")
    parser.add_argument(
        "--checkpoints", type=int, help="checkpoints per model (default: the release's counts)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help=f"the small stand-in of smoke builds: {SMOKE}"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing stand-in")
    args = parser.parse_args(argv)
    sizes = args.sizes or (SMOKE["sizes"] if args.smoke else None)
    checkpoints = args.checkpoints or (SMOKE["checkpoints"] if args.smoke else None)
    try:
        standin = write_standin(
            args.out, sizes=sizes, checkpoints=checkpoints, seed=args.seed, overwrite=args.overwrite
        )
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(standin.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
