"""Can the input pipeline keep an accelerator fed? Loader throughput and data wait. Prints JSON.

1. Loader samples/s per CPU core at the paper's 572 -> 388 tiles:
   ``unetseg.train.batches.TileBatches``
   reads a synthetic ``data/augmented/train.h5``-style store (written with the project's
   ``TileWriter``, gzip-compressed as augment writes it) and builds each batch's targets,
   the plain (class, weight) pair and, with ``distance_clip``, the distance head's too.
   Per core = samples per CPU-second of the loading process (robust to a busy machine);
   with ``--workers`` > 1 also the wall-clock rate of that many loader processes.
   Goal: >= 100 samples/s per core.
2. Share of each training step spent waiting for data in a short CPU ``fit`` run of the
   default model (``params.yaml`` geometry) streaming from such a store, against the same
   batches held in memory (epochs alternated so machine noise hits both). Goal: <= 5 %.

Usage: python benchmarks/loader.py [--tiles 48] [--repeats 3] [--workers N] [--steps 24]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path

from unetseg.runtime import configure_backend

configure_backend()
import keras
import numpy as np
from scipy import ndimage

from unetseg.config import ModelParams, TrainParams
from unetseg.prepare.store import TileWriter
from unetseg.train.batches import TileBatches
from unetseg.train.fit import compiled_model


def cpu_info() -> dict[str, object]:
    """Model name, core count and vector extensions of this machine's CPU."""
    name, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {"model": name, "cores": len(os.sched_getaffinity(0)),
            "avx512": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx": "amx_tile" in flags}


def synthetic_store(path: Path, n: int, in_size: int, out_size: int) -> None:
    """``n`` tiles like augment's: smooth normalised images, blobby cells, Eq. 2-like weights."""
    rng = np.random.default_rng(0)
    margin = (in_size - out_size) // 2
    with TileWriter(path, n, in_size, out_size, {}) as writer:
        for k in range(n):
            image = ndimage.gaussian_filter(rng.standard_normal((in_size, in_size)), 3)
            image = ((image - image.mean()) / image.std()).astype(np.float32)
            cells = image[margin:margin + out_size, margin:margin + out_size] > 0.3
            gap = ndimage.distance_transform_edt(~cells)
            weights = np.where(cells, 1.4, 0.7) + np.where(cells, 0, 10 * np.exp(-gap ** 2 / 12.5))
            writer.append(image[None], cells[None].astype(np.uint8),
                          weights[None].astype(np.float32), k // 4, k % 4)


def loader_rate(path: Path, n: int, batch: int, clip: float, repeats: int) -> dict[str, float]:
    """Samples per CPU-second and per wall-second of one process iterating ``TileBatches``."""
    data = TileBatches(path, np.arange(n), batch, shuffle=True, seed=0, distance_clip=clip)
    data[0]
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        for i in range(len(data)):
            data[i]
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
        data.on_epoch_end()
    data.close()
    samples = len(data) * batch
    return {"per_core": round(samples / float(np.median(cpu)), 1),
            "wall": round(samples / float(np.median(wall)), 1)}


def _batch(args: tuple[TileBatches, int]) -> int:
    data, index = args
    return len(data[index][0])


def parallel_rate(path: Path, n: int, batch: int, clip: float, workers: int,
                  repeats: int) -> float:
    """Wall-clock samples/s of ``workers`` processes building batches, as Keras' workers do."""
    data = TileBatches(path, np.arange(n), batch, shuffle=True, seed=0, distance_clip=clip)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_batch, [(data, i) for i in range(workers)])
        start = time.perf_counter()
        done = sum(sum(pool.map(_batch, [(data, i) for i in range(len(data))]))
                   for _ in range(repeats))
        return round(done / (time.perf_counter() - start), 1)


class _InMemory(keras.utils.PyDataset):
    """The same batches as a ``TileBatches``, built beforehand: training with no loading."""

    def __init__(self, source: TileBatches) -> None:
        super().__init__()
        self.batches = [source[i] for i in range(len(source))]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.batches[i]


def data_wait(path: Path, n: int, m: ModelParams, p: TrainParams, steps: int, workers: int,
              repeats: int) -> dict[str, float]:
    """Share of the training time spent on data: epochs streamed vs. from memory, alternated.

    ``fit`` fetches batches inside its step, so the wait shows as the streamed epoch's extra
    time: ``1 - t_memory / t_streamed`` (median epochs; noise can make it slightly negative).
    """
    keras.utils.set_random_seed(0)
    model = compiled_model(m, p, steps_per_epoch=steps)
    streamed = TileBatches(path, np.arange(n), p.batch_size, shuffle=True, seed=0, steps=steps,
                           workers=workers)
    memory = _InMemory(TileBatches(path, np.arange(n), p.batch_size, shuffle=True, seed=0,
                                   steps=steps))
    model.fit(memory, epochs=1, steps_per_epoch=2, verbose=0)  # compile outside the clock
    times: dict[str, list[float]] = {"memory": [], "streamed": []}
    for _ in range(repeats):
        for name, data in (("memory", memory), ("streamed", streamed)):
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
    streamed.close()
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"workers": workers, "wait_share": round(1 - med["memory"] / med["streamed"], 4),
            "step_s_memory": round(med["memory"] / steps, 4),
            "step_s_streamed": round(med["streamed"] / steps, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=48, help="tiles in the synthetic store")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="loader processes for the parallel rate (1: skip it)")
    parser.add_argument("--steps", type=int, default=24, help="train steps timed for the wait")
    parser.add_argument("--tile", type=int, default=572, help="input tile of the loader test")
    args = parser.parse_args()
    paper = ModelParams(depth=4, base_filters=64, tile_size=args.tile)
    m, p = ModelParams(), TrainParams()
    result: dict[str, object] = {"benchmark": "loader", "backend": keras.backend.backend(),
                                 "cpu": cpu_info(), "batch_size": p.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "paper.h5"
        synthetic_store(big, args.tiles, paper.tile_size, paper.out_size)
        result["store"] = {"tile": f"{paper.tile_size}->{paper.out_size}", "tiles": args.tiles,
                           "mb_per_tile": round(big.stat().st_size / args.tiles / 1e6, 3)}
        for name, clip in (("plain", 0.0), ("distance", 20.0)):
            rates = loader_rate(big, args.tiles, p.batch_size, clip, args.repeats)
            if args.workers > 1:
                rates[f"wall_{args.workers}_workers"] = parallel_rate(
                    big, args.tiles, p.batch_size, clip, args.workers, args.repeats)
            result[f"loader_samples_per_s_{name}"] = rates
        small = Path(tmp) / "default.h5"
        synthetic_store(small, args.tiles, m.tile_size, m.out_size)
        result["train"] = {"tile": f"{m.tile_size}->{m.out_size}", "depth": m.depth,
                           "base_filters": m.base_filters,
                           "runs": [data_wait(small, args.tiles, m, p, args.steps, w, args.repeats)
                                    for w in sorted({1, args.workers})]}
    result["goal"] = "loader per_core >= 100 samples/s; train wait_share <= 0.05"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
