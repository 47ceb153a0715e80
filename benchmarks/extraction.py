"""Benchmark: four ways to get per-layer massive-activation statistics, side by side.

On the same random GPT-NeoX (Pythia-70m-shaped by default: d=512, L=6, 8 heads) and the same
token ids:

* ``bare``: the base model's forward pass alone (the floor);
* ``ours``: :func:`massive_activations.measurement.measure.measure_model` (hooks, on-device fp32
  reductions);
* ``hidden_states``: ``output_hidden_states=True``, then numpy on the host;
* ``sun``: Sun et al.'s way, each layer's output copied to the host in float64 during the
  forward pass, then sorted (``torch.sort``) for the top-3 and ``torch.median``.

Timing: one process, a warm-up pass of each method, then ``--repeats`` rounds in which every
method runs once (interleaved, so background load hits all alike) over ``--n-sequences``
sequences of ``--seq-len`` tokens, batch 1; the minimum and the median per method are shown,
and the ratio of minima to ``bare``.  Memory: each method in a fresh process, one warm-up pass,
then the peak during one pass (process peak RSS on CPU, reset after the warm-up on Linux, so
it includes the model's weights; ``torch.cuda.max_memory_allocated`` on CUDA).

With ``--executor ray`` the benchmark compares instead the two ways of running extraction
units (:func:`massive_activations.measurement.extract.extract`) on the same ``--units``
random checkpoints of that shape, saved as a local suite: in-process (one unit after the
other, ``--threads`` torch threads, 1 by default as a Ray task gets), and Ray tasks on a local
instance with 1 and with 2 CPU workers.  Ray's start-up is timed apart; the tables must be
identical; the overhead per unit is (Ray with 1 worker - in-process) / units, cold (the first
run: Ray's workers, and this process, import and set up) and warm (a second run, on other
folders, with the same workers).

Usage::

    python benchmarks/extraction.py --seq-len 2048
    python benchmarks/extraction.py --device cuda --hidden 2048 --layers 16 --heads 8
    python benchmarks/extraction.py --executor ray --units 8 --hidden 128 --layers 4 --heads 4 \
        --vocab 8192 --seq-len 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

METHODS = ("bare", "ours", "hidden_states", "sun")


def _model(args):
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(args.seed)
    config = GPTNeoXConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=max(2048, args.seq_len),
    )
    model = GPTNeoXForCausalLM(config).eval()
    return model.to(device=args.device, dtype=getattr(torch, args.dtype))


def _runner(method, model, ids):
    import numpy as np
    import torch

    from massive_activations.measurement.measure import decoder_layers, measure_model

    base = model.base_model

    def bare():
        for row in ids:
            base(input_ids=row[None], use_cache=False)

    def ours():
        measure_model(model, ids)

    def hidden_states():
        for row in ids:
            out = base(input_ids=row[None], use_cache=False, output_hidden_states=True)
            for h in out.hidden_states[1:]:
                a = np.abs(h[0].float().cpu().numpy()).ravel()
                part = np.partition(a, [(a.size - 1) // 2, a.size - 3, a.size - 2, a.size - 1])
                _top3, _median = part[-3:][::-1], part[(a.size - 1) // 2]

    def sun():
        kept = []
        hooks = [
            layer.register_forward_hook(
                lambda m, i, o: kept.append(
                    (o[0] if isinstance(o, tuple) else o).detach().to("cpu", torch.float64)
                )
            )
            for layer in decoder_layers(model)
        ]
        try:
            for row in ids:
                kept.clear()
                base(input_ids=row[None], use_cache=False)
                for h in kept:
                    a = h.abs()
                    _top3 = torch.sort(a.flatten(), descending=True).values[:3]
                    _median = torch.median(a)
        finally:
            for hook in hooks:
                hook.remove()

    return {"bare": bare, "ours": ours, "hidden_states": hidden_states, "sun": sun}[method]


def _setup(args):
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _model(args)
    generator = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, args.vocab, (args.n_sequences, args.seq_len), generator=generator)
    cuda = torch.device(args.device).type == "cuda"

    def timed(run) -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            run()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return model, ids.to(args.device), cuda, timed


def _time_all(args) -> dict:
    """Time every method in one process, interleaved, so load on the machine hits all alike."""
    model, ids, _, timed = _setup(args)
    runs = {m: _runner(m, model, ids) for m in args.methods}
    for run in runs.values():
        timed(run)  # warm-up
    times = {m: [] for m in runs}
    for _ in range(args.repeats):
        for method, run in runs.items():
            times[method].append(timed(run))
    return {m: {"min": min(t), "median": statistics.median(t)} for m, t in times.items()}


def _worker(args) -> None:
    """Peak memory of one method, in a fresh process: one warm-up pass, reset, one pass."""
    import torch

    from massive_activations.measurement.cost import peak_rss_mib, reset_peak_rss

    model, ids, cuda, timed = _setup(args)
    run = _runner(args.worker, model, ids)
    timed(run)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak_rss()
    timed(run)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib()
    print(json.dumps({"method": args.worker, "peak": peak}))


def _executors(args) -> None:
    """In-process vs Ray (1 and 2 workers) on the same units; start-up timed apart."""
    import tempfile
    from pathlib import Path

    import pandas as pd
    import torch
    from transformers.utils import logging as hf_logging

    from massive_activations.measurement.extract import extract
    from massive_activations.measurement.ray_executor import RayExecutor, connect
    from massive_activations.measurement.sources import local_checkpoints
    from massive_activations.measurement.store import ActivationStore

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads or 1)
    generator = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, args.vocab, (args.n_sequences, args.seq_len), generator=generator)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for unit in range(args.units):
            args.seed += 1
            _model(args).save_pretrained(root / "suite" / "m" / f"step{unit}")
        ckpts = local_checkpoints(root / "suite")
        rows = []
        for run in ("cold", "warm"):  # cold: the first loads in this process import and set up
            start = time.perf_counter()
            store = ActivationStore(root / f"inprocess-{run}", "s")
            reference = extract(ckpts, ids, store, dtype=args.dtype, progress=False)
            rows.append((f"in-process, {run}", 1, 0.0, time.perf_counter() - start))
        tables = {}
        for workers in (1, 2):
            start = time.perf_counter()
            ray, _ = connect(RayExecutor(num_cpus=workers))
            startup = time.perf_counter() - start
            for run in ("cold", "warm"):  # cold: the workers start; warm: they are reused
                start = time.perf_counter()
                store = ActivationStore(root / f"ray{workers}-{run}", "s")
                tables[workers, run] = extract(
                    ckpts, ids, store, dtype=args.dtype, executor="ray", progress=False
                )
                label = f"ray, {workers} worker(s), {run}"
                rows.append((label, workers, startup, time.perf_counter() - start))
                startup = 0.0
            ray.shutdown()
    identical = all(t.drop(columns="suite").equals(reference.drop(columns="suite"))
                    for t in tables.values())  # fmt: skip
    table = pd.DataFrame(rows, columns=["path", "workers", "startup_s", "run_s"])
    table["s_per_unit"] = table["run_s"] / args.units
    table["units_per_s"] = args.units / table["run_s"]
    print(
        f"{args.units} checkpoints of GPT-NeoX d={args.hidden} L={args.layers} H={args.heads} "
        f"vocab={args.vocab}, {args.n_sequences} x {args.seq_len} tokens each, {args.dtype} on "
        f"cpu, torch threads per unit: {args.threads or 1}"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    per_unit = dict(zip(table["path"], table["s_per_unit"], strict=True))
    for run in ("cold", "warm"):
        inproc = per_unit[f"in-process, {run}"]
        ray1 = per_unit[f"ray, 1 worker(s), {run}"]
        print(
            f"overhead per unit (ray, 1 worker, {run} - in-process): {ray1 - inproc:+.3f} s "
            f"({(ray1 / inproc - 1) * 100:+.0f}%)"
        )
    print(f"ray start-up: {table['startup_s'].iloc[2]:.1f} s once; tables identical: {identical}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--n-sequences", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--executor", choices=["ray"], help="compare the Ray path with the in-process one"
    )
    parser.add_argument("--units", type=int, default=8, help="with --executor: checkpoints")
    args = parser.parse_args(argv)
    if args.executor:
        _executors(args)
        return
    if args.worker:
        _worker(args)
        return

    passed = []
    for name in ("seq_len", "n_sequences", "hidden", "layers", "heads", "vocab", "threads"):
        passed += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    passed += ["--device", args.device, "--dtype", args.dtype, "--seed", str(args.seed)]
    peaks = {}
    for method in args.methods:
        out = subprocess.run(
            [sys.executable, __file__, *passed, "--worker", method],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[method] = json.loads(out.stdout.strip().splitlines()[-1])["peak"]
    times = _time_all(args)
    memory = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(
        f"GPT-NeoX d={args.hidden} L={args.layers} H={args.heads} vocab={args.vocab}, "
        f"{args.n_sequences} x {args.seq_len} tokens, {args.dtype} on {args.device}, "
        f"threads={args.threads or 'default'}, {args.repeats} interleaved repeats"
    )
    print(f"{'method':<14} {'min s':>8} {'median s':>9} {'x bare':>7} {memory:>13}")
    floor = times.get("bare", {}).get("min")
    for method, t in times.items():
        ratio = f"{t['min'] / floor:7.2f}" if floor else f"{'-':>7}"
        print(f"{method:<14} {t['min']:8.3f} {t['median']:9.3f} {ratio} {peaks[method]:13.0f}")
    if "ours" in times and "sun" in times:
        print(f"sun / ours (min times): {times['sun']['min'] / times['ours']['min']:.2f}x")


if __name__ == "__main__":
    main()
