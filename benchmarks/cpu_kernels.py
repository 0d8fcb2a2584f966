"""Training speed with TensorFlow's oneDNN CPU kernels on vs. off, side by side.

TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI, AVX-VNNI or AMX;
`unetseg` asks for it everywhere (``TF_ENABLE_ONEDNN_OPTS=1`` unless already set).
Each round trains the same model in two fresh processes, one per setting, alternating,
so that machine noise hits both alike. Prints JSON with seconds per step and the ratio.
Usage: python benchmarks/cpu_kernels.py [--rounds 3] [--steps 16] [--depth 3]
       [--base-filters 16] [--tile 268] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def _worker(args: argparse.Namespace) -> None:
    import time

    import keras

    from unetseg.config import ModelParams, TrainParams
    from unetseg.train.fit import compiled_model

    m = ModelParams(depth=args.depth, base_filters=args.base_filters, tile_size=args.tile)
    keras.utils.set_random_seed(0)
    model = compiled_model(m, TrainParams(batch_size=args.batch_size))
    rng = np.random.default_rng(0)
    b, i_s, o_s = args.batch_size, m.tile_size, m.out_size
    x = rng.random((b, i_s, i_s, 1), dtype=np.float32)
    y = np.stack([rng.random((b, o_s, o_s)) > 0.5, rng.random((b, o_s, o_s)) * 5], axis=-1)
    y = y.astype(np.float32)
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    print(json.dumps({"s_per_step": (time.perf_counter() - start) / args.steps}))


def _run(args: argparse.Namespace, onednn: str) -> float:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--depth",
           str(args.depth), "--base-filters", str(args.base_filters), "--tile", str(args.tile),
           "--batch-size", str(args.batch_size)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["s_per_step"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--tile", type=int, default=268)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    times: dict[str, list[float]] = {"onednn": [], "plain": []}
    for _ in range(args.rounds):
        times["onednn"].append(_run(args, "1"))
        times["plain"].append(_run(args, "0"))
    med = {k: float(np.median(v)) for k, v in times.items()}
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    print(json.dumps({
        "benchmark": "cpu_kernels", "cores": os.cpu_count(),
        "avx512": "avx512f" in flags, "model": f"depth {args.depth}, {args.base_filters} filters",
        "tile": args.tile, "batch_size": args.batch_size,
        "onednn_s_per_step": [round(t, 3) for t in times["onednn"]],
        "plain_s_per_step": [round(t, 3) for t in times["plain"]],
        "speedup": round(med["plain"] / med["onednn"], 3),
        "goal": "speedup >= 1 (oneDNN is what unetseg asks TensorFlow for)",
    }, indent=2))


if __name__ == "__main__":
    main()
