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

Usage::

    python benchmarks/extraction.py --seq-len 2048
    python benchmarks/extraction.py --device cuda --hidden 2048 --layers 16 --heads 8
"""

from __future__ import annotations

import argparse
import json
import resource
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


def _reset_peak_rss() -> None:
    """Reset the process's peak RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # elsewhere the peak includes building the model


def _peak_rss() -> float:
    """Peak resident memory in MiB since the last reset (VmHWM), else since the start."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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

    model, ids, cuda, timed = _setup(args)
    run = _runner(args.worker, model, ids)
    timed(run)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak_rss()
    timed(run)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss()
    print(json.dumps({"method": args.worker, "peak": peak}))


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
    args = parser.parse_args(argv)
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
