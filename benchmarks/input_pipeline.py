"""Training from the streaming HDF5 pipeline vs. from in-memory tensors, side by side.

Goal (train issue): streaming costs at most 5 % of throughput. Prints JSON.
Usage: python benchmarks/input_pipeline.py [--tiles 96] [--steps 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from unetseg.runtime import configure_backend

configure_backend()
import keras
import numpy as np

from unetseg.config import ModelParams, TrainParams
from unetseg.batches import TileBatches
from unetseg.store import TileWriter
from unetseg.training import compiled_model


class _InMemory(keras.utils.PyDataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.order = np.random.default_rng(seed).permutation(len(x))

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.order[i * self.batch_size: (i + 1) * self.batch_size]
        return self.x[idx], self.y[idx]


def _timed_epoch(model: keras.Model, data: keras.utils.PyDataset) -> float:
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    m, p = ModelParams(), TrainParams()
    rng = np.random.default_rng(0)
    n, i_s, o_s = args.tiles, m.tile_size, m.out_size
    inputs = rng.random((n, i_s, i_s), dtype=np.float32)
    classes = (rng.random((n, o_s, o_s)) > 0.5).astype(np.uint8)
    weights = rng.random((n, o_s, o_s), dtype=np.float32) * 5
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiles.h5"
        with TileWriter(path, n, i_s, o_s, {}) as writer:
            writer.append(inputs, classes, weights, 0, 0)
        x = inputs[..., None]
        y = np.stack([classes.astype(np.float32), weights], axis=-1)
        model = compiled_model(m, p)
        streamed = TileBatches(path, np.arange(n), p.batch_size, shuffle=True, seed=0)
        memory = _InMemory(x, y, p.batch_size, 0)
        _timed_epoch(model, memory)  # trace the graph once
        times: dict[str, list[float]] = {"hdf5": [], "memory": []}
        for _ in range(args.repeats):  # interleave so machine noise hits both alike
            times["memory"].append(_timed_epoch(model, memory))
            times["hdf5"].append(_timed_epoch(model, streamed))
        streamed.close()
    med = {k: float(np.median(v)) for k, v in times.items()}
    samples = len(memory) * p.batch_size
    print(json.dumps({
        "benchmark": "input_pipeline", "backend": keras.backend.backend(), "tiles": n,
        "tile": f"{i_s}->{o_s}", "batch_size": p.batch_size,
        "memory_samples_per_s": round(samples / med["memory"], 2),
        "hdf5_samples_per_s": round(samples / med["hdf5"], 2),
        "hdf5_slowdown": round(med["hdf5"] / med["memory"] - 1, 4),
        "goal": "hdf5_slowdown <= 0.05",
    }, indent=2))


if __name__ == "__main__":
    main()
