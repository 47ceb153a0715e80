"""Running independent jobs, in order, in one process or several, with a progress bar.

The predictor's validations, repeated splits and power replicates are independent seeded jobs;
:func:`run_jobs` is the one way they are dispatched, so the tables do not depend on ``n_jobs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tqdm import tqdm


def run_jobs(
    func: Callable[..., Any],
    jobs: Sequence[tuple],
    *,
    n_jobs: int = 1,
    progress: bool = False,
    desc: str | None = None,
    unit: str = "it",
    **kwargs: Any,
) -> list:
    """``[func(*job, **kwargs) for job in jobs]``, optionally in parallel processes.

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled to the worker processes when ``n_jobs != 1``).
    jobs : sequence of tuple
        The positional arguments of each call.
    n_jobs : int, default 1
        1 runs every call in this process; otherwise joblib's ``n_jobs`` (``-1``: all cores).
    progress : bool, default False
        Show a tqdm progress bar, advanced as each result arrives.
    desc, unit : str
        The progress bar's label and unit.
    **kwargs
        Keyword arguments passed to every call.

    Returns
    -------
    list
        The results, in the order of ``jobs`` whatever ``n_jobs``.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(
            f"n_jobs={n_jobs!r}: give a nonzero integer (1 runs in this process, -1 on all cores)."
        )
    jobs = list(jobs)
    if n_jobs == 1:
        out: Iterable = (func(*job, **kwargs) for job in jobs)
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
        out = parallel(delayed(func)(*job, **kwargs) for job in jobs)
    return list(tqdm(out, total=len(jobs), desc=desc, unit=unit, disable=not progress))
