"""Extraction units as Ray tasks: one task per (model, step, dtype), on a local Ray or a cluster.

:func:`~massive_activations.measurement.extract.extract` with ``executor="ray"`` (or a
:class:`RayExecutor`) hands the units it has not stored yet to :func:`run_units`: each
becomes one Ray task that loads the checkpoint on its worker (on the GPU share Ray gives it),
measures it with the same hooks and returns its rows, which the driver writes through the
same :class:`~massive_activations.measurement.store.ActivationStore` as soon as they arrive.
Resume, deduplication and the table are therefore those of the in-process path; a unit is
written once, by the driver, so a retried task never duplicates rows.

A task that raises, or whose worker dies (killed, out of memory), is submitted again up to
``retries`` times; a unit that still fails is reported with its reason
(:class:`UnitFailure`, :class:`ExtractionFailed`), never dropped silently.

Nothing starts a cluster unless asked: without ``address`` a new Ray instance is started in
this process, bound to 127.0.0.1, with the dashboard off and Ray's usage statistics off, and
shut down at the end; ``address`` joins an existing cluster (``"ray://head:10001"`` or
``"auto"``).  A process already connected to Ray is reused as it is.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
from tqdm import tqdm

from massive_activations import reference
from massive_activations.measurement.sources import Checkpoint

__all__ = [
    "ExtractionFailed",
    "RayExecutor",
    "UnitFailure",
    "connect",
    "run_units",
]

_LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class RayExecutor:
    """How to run extraction units on Ray.

    Attributes
    ----------
    address : str, optional
        An existing cluster (``"ray://head:10001"``, ``"auto"``); None starts a local instance
        on 127.0.0.1 for the run.
    gpus_per_task : float, optional
        GPU share of each task on a CUDA device (at most 1); None derives it from each model's
        size and dtype (:func:`~massive_activations.measurement.cost.gpu_share`).
    cpus_per_task : float, default 1
        CPUs of each task.
    retries : int, default 2
        Submissions of a failed unit after the first.
    num_cpus : int, optional
        CPUs of a local instance (default: all).
    gpu_memory_gib : float, optional
        Memory of one GPU, for the derived share (default the reference file's
        ``gpu_throughput.memory_gib``).
    """

    address: str | None = None
    gpus_per_task: float | None = None
    cpus_per_task: float = 1.0
    retries: int = 2
    num_cpus: int | None = None
    gpu_memory_gib: float | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0; got {self.retries}.")
        if self.gpus_per_task is not None and not 0 < self.gpus_per_task <= 1:
            raise ValueError(
                f"gpus_per_task must be in (0, 1]; got {self.gpus_per_task} (a checkpoint is "
                "loaded on one GPU; use a fraction such as 0.25 to share one)."
            )
        if self.cpus_per_task <= 0:
            raise ValueError(f"cpus_per_task must be > 0; got {self.cpus_per_task}.")


@dataclasses.dataclass(frozen=True)
class UnitFailure:
    """A unit that failed on every attempt: what it is, how often it was tried, and why."""

    model: str
    step: int
    dtype: str
    attempts: int
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.model} step {self.step} ({self.dtype}): failed {self.attempts} time(s): "
            f"{self.reason}"
        )


class ExtractionFailed(RuntimeError):
    """Some units failed after their retries; the others are stored and merged.

    Attributes
    ----------
    failures : list of UnitFailure
    table : pandas.DataFrame
        The table written with the units that succeeded.
    """

    def __init__(self, failures: Sequence[UnitFailure], table: pd.DataFrame) -> None:
        self.failures = list(failures)
        self.table = table
        lines = "\n".join(f"  {f}" for f in self.failures)
        super().__init__(
            f"{len(self.failures)} unit(s) failed and are not in the table; the others are "
            f"stored. Fix the cause and run the same command again (finished units are "
            f"skipped):\n{lines}"
        )


_LOCAL_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage report to Ray's servers
    # Ray's switch for "this node is not part of a cluster": the node's address is 127.0.0.1.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


def _start_local(ray, executor: RayExecutor):
    """``ray.init`` of a new local instance on 127.0.0.1; the settings are restored after."""
    from ray._private import ray_constants

    saved_env = {k: os.environ.get(k) for k in _LOCAL_ENV}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update(_LOCAL_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False  # read when the node's address is chosen
    try:
        return ray.init(
            address="local",
            num_cpus=executor.num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address=_LOOPBACK,
        )
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def connect(executor: RayExecutor):
    """Connect to Ray as ``executor`` says; return ``(ray, started)``.

    ``started`` is True when this call started or joined Ray (the caller shuts it down).

    Raises
    ------
    RuntimeError
        If a local instance would listen on an address other than 127.0.0.1 (it is shut down
        first).
    """
    import ray

    if ray.is_initialized():
        return ray, False
    if executor.address is not None:
        ray.init(address=executor.address, log_to_driver=False)
        return ray, True
    context = _start_local(ray, executor)
    bound = context.address_info.get("node_ip_address")
    if bound != _LOOPBACK:
        ray.shutdown()
        raise RuntimeError(
            f"The local Ray instance chose the address {bound}, not {_LOOPBACK}; it was shut "
            "down. Start Ray yourself (`ray start --head --node-ip-address 127.0.0.1`) and "
            "pass --address auto."
        )
    return ray, True


def _task(work: Callable, checkpoint: Checkpoint, shared: Mapping) -> pd.DataFrame:
    """The body of one Ray task: ``work(checkpoint, **shared)``."""
    return work(checkpoint, **shared)


def _reason(error: BaseException) -> str:
    """One line saying why a task failed (the task's own exception when Ray wraps one)."""
    from ray import exceptions

    if isinstance(error, exceptions.RayTaskError):
        cause = getattr(error, "cause", None)
        if cause is not None:
            error = cause
    elif isinstance(error, exceptions.OutOfMemoryError):
        return "out of host memory: Ray's memory monitor killed the task"
    elif isinstance(error, exceptions.WorkerCrashedError | exceptions.NodeDiedError):
        return "the worker process died (killed, crashed or out of memory)"
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:500]


def _gpus(units: Sequence[Checkpoint], shared: Mapping, executor: RayExecutor) -> dict:
    """GPU share per model: 0 off CUDA, the executor's, or derived from size and dtype."""
    import torch

    device = torch.device(shared.get("device", "cpu"))
    if device.type != "cuda":
        return {u.model: 0.0 for u in units}
    if device.index is not None:
        raise ValueError(
            f"With the Ray executor pass --device cuda, not {device}: Ray gives each task its "
            "own GPU."
        )
    if executor.gpus_per_task is not None:
        return {u.model: float(executor.gpus_per_task) for u in units}
    from massive_activations.measurement.cost import (
        checkpoint_architecture,
        gpu_share,
        measurement_cost,
    )
    from massive_activations.measurement.measure import as_inputs

    gib = executor.gpu_memory_gib or reference.entry("gpu_throughput")["memory_gib"]
    ids = next(iter(as_inputs(shared["input_ids"]).values()))
    shares = {}
    for unit in units:
        if unit.model not in shares:
            cost = measurement_cost(
                **checkpoint_architecture(unit),
                n_sequences=int(ids.shape[0]),
                seq_len=int(ids.shape[1]),
                dtype=shared["dtype"],
                batch_size=int(shared.get("batch_size", 1)),
                attention_sink=bool(shared.get("attention_sink", False)),
            )
            shares[unit.model] = gpu_share(cost["memory_bytes"], gib * 2**30)
    return shares


def run_units(
    units: Sequence[Checkpoint],
    work: Callable[..., pd.DataFrame],
    shared: Mapping,
    write: Callable[[pd.DataFrame], object],
    executor: RayExecutor,
    *,
    description: str = "extract",
    progress: bool = True,
) -> list[UnitFailure]:
    """Run ``work(unit, **shared)`` for every unit as a Ray task; ``write`` each result.

    Parameters
    ----------
    units : sequence of Checkpoint
        The units to do (none already stored).
    work : callable
        Importable function (it is sent to the workers) returning the unit's rows, with
        ``model``, ``step`` and ``dtype`` columns.
    shared : mapping
        Keyword arguments of ``work`` common to all units (sent once); ``device``, ``dtype``,
        ``input_ids`` also size the GPU share.
    write : callable
        Called in this process with each unit's rows, once per unit (``store.write_part``).
    executor : RayExecutor
    description : str
        Label of the progress bar.
    progress : bool, default True
        One progress bar over units.

    Returns
    -------
    list of UnitFailure
        The units that failed on all ``1 + executor.retries`` attempts, with the reason.
    """
    if not units:
        return []
    shares = _gpus(units, shared, executor)
    ray, started = connect(executor)
    failures: list[UnitFailure] = []
    try:
        shared_ref = ray.put(dict(shared))
        task = ray.remote(_task)

        def submit(unit: Checkpoint):
            options = {
                "num_cpus": executor.cpus_per_task,
                "num_gpus": shares[unit.model],
                "max_retries": 0,  # retried here, with the reason kept
            }
            return task.options(**options).remote(work, unit, shared_ref)

        pending = {submit(u): (u, 1) for u in units}
        bar = tqdm(total=len(units), desc=description, unit="ckpt", disable=not progress)
        with bar:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                unit, attempt = pending.pop(ref)
                try:
                    rows = ray.get(ref)
                except Exception as error:
                    reason = _reason(error)
                    if attempt <= executor.retries:
                        bar.set_postfix_str(f"retrying {unit.model} step {unit.step}: {reason}")
                        pending[submit(unit)] = (unit, attempt + 1)
                        continue
                    dtype = str(shared.get("dtype", ""))
                    failures.append(UnitFailure(unit.model, unit.step, dtype, attempt, reason))
                    bar.update(1)
                    continue
                write(rows)
                bar.update(1)
    finally:
        if started:
            ray.shutdown()
    return failures
