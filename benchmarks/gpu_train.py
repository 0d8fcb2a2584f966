"""Device check: the paper-size U-Net's training speed on one accelerator, then a short EM run.

Runs where only JAX is installed (no TensorFlow, DVC or dvclive; Keras may be a carried
wheel), with ``KERAS_BACKEND=jax`` (set here unless already set). Prints one JSON object:

1. ``speed``: steps/s and samples/s of ``train_on_batch`` on synthetic tiles for each batch
   size and precision, the training TFLOP/s this achieves (3x the forward FLOPs counted
   from the convolution layers' shapes: forward, gradient of inputs, gradient of weights)
   as a share of the chip's dense bf16 peak (``--peak-tflops``, 989 for an H100/H200 SXM),
   and the device's peak memory so far (``memory_stats``; runs go from small to large).
2. ``em``: ``--em-seconds`` of training with the model and train settings of ``--config``
   (default ``configs/isbi2012-em-gpu.yaml``) on the ISBI 2012 EM slices, augmented as that
   config says, with the last ``--holdout`` slices held out; then their pixel error with
   the config's evaluate settings. The cosine schedule spans the steps the time allows.

Defaults take about 6-8 minutes on an H100/H200. A tiny CPU check (as tests run it):
``python benchmarks/gpu_train.py --tile 44 --depth 2 --filters 4 --batches 1,2
--bench-seconds 0.2 --em-seconds 2 --em-tile 44 --em-depth 2 --em-filters 4 --copies 0``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # not when a test imports it: its subprocesses would inherit it
    os.environ.setdefault("KERAS_BACKEND", "jax")
from unetseg.runtime import configure_backend

configure_backend()
import jax
import keras
import numpy as np
import yaml

from unetseg.augment.tiles import TileJob, build_tiles
from unetseg.config import ModelParams, Params, TrainParams, params_from_dict
from unetseg.data.em import read_em
from unetseg.infer.segmenter import Segmenter
from unetseg.prepare.store import PreparedSample, TileWriter
from unetseg.prepare.targets import target_options, training_target
from unetseg.score.metrics import pixel_error, rand_error
from unetseg.tiling import tile_grid, tile_step
from unetseg.train.batches import TileBatches
from unetseg.train.card import network_card
from unetseg.train.fit import compiled_model

ROOT = Path(__file__).resolve().parents[1]


def conv_flops(model: keras.Model) -> float:
    """Forward FLOPs per sample of the model's convolutions (2 per multiply-add).

    ``Conv2D``: ``2 * out_y * out_x * out_c * k_y * k_x * in_c``; ``Conv2DTranspose``
    (stride = kernel, as in the up-convolutions): ``2 * in_y * in_x * in_c * k_y * k_x * out_c``.
    Pooling, activations, crops and the loss are left out (a few per cent at most).
    """
    total = 0.0
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            continue
        ky, kx, _, _ = layer.kernel.shape
        in_shape, out_shape = layer.input.shape, layer.output.shape
        if isinstance(layer, keras.layers.Conv2DTranspose):
            total += 2.0 * in_shape[1] * in_shape[2] * in_shape[3] * ky * kx * out_shape[3]
        else:
            total += 2.0 * out_shape[1] * out_shape[2] * out_shape[3] * ky * kx * in_shape[3]
    return total


def peak_memory_gib(device: jax.Device) -> float | None:
    """The device's peak allocated memory so far, or None where it keeps no statistics."""
    stats = device.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return round(peak / 2**30, 3) if peak is not None else None


def speed(m: ModelParams, batch: int, precision: str, seconds: float, warmup: int,
          peak_tflops: float) -> dict[str, object]:
    """Steady-state training speed of one batch size and precision on synthetic tiles."""
    keras.utils.set_random_seed(0)
    policy = "none" if precision == "float32" else precision
    model = compiled_model(m, TrainParams(lr=1e-4, batch_size=batch, mixed_precision=policy))
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.random((batch, m.tile_size, m.tile_size, 1), dtype=np.float32))
    classes = rng.random((batch, m.out_size, m.out_size)) > 0.5
    y = jax.device_put(np.stack([classes, np.ones_like(classes)], -1).astype(np.float32))
    start = time.perf_counter()
    for _ in range(warmup):
        model.train_on_batch(x, y)
    compile_s = time.perf_counter() - start
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        loss = model.train_on_batch(x, y)
        steps += 1
    elapsed = time.perf_counter() - start
    flops = 3 * conv_flops(model) * batch * steps / elapsed
    result = {"batch": batch, "precision": precision, "steps_per_s": round(steps / elapsed, 3),
              "samples_per_s": round(batch * steps / elapsed, 2),
              "tflops": float(f"{flops / 1e12:.4g}"),
              "share_of_peak": float(f"{flops / 1e12 / peak_tflops:.3g}"),
              "peak_memory_gib_so_far": peak_memory_gib(jax.devices()[0]),
              "warmup_s": round(compile_s, 1), "loss": round(float(np.ravel(loss)[0]), 4)}
    keras.backend.clear_session()
    return result


def em_tiles(samples: list, params: Params, copies: int, path: Path, workers: int) -> int:
    """Prepare and augment ``samples`` as prepare and augment would, into a tile store."""
    m, a = params.model, params.augment
    step = tile_step(m.out_size, m.depth, m.padding)
    target_kw = target_options(params.prepare)
    augment_kw = {k: v for k, v in dataclasses.asdict(a).items() if k not in ("copies", "seed")}
    jobs = []
    for i, s in enumerate(samples):
        classes, weights = training_target(s.mask, **target_kw)
        prepared = PreparedSample(s.name, s.origin, s.image, s.mask, classes, weights)
        jobs.append(TileJob(i, prepared, tile_grid(s.mask.shape, m.tile_size, m.out_size, step),
                            copies, a.seed, augment_kw, target_kw))
    n = sum(len(j.grid.positions) for j in jobs) * (copies + 1)
    with TileWriter(path, n, m.tile_size, m.out_size, {}) as writer, \
            multiprocessing.get_context("fork").Pool(workers) as pool:
        for i, per_copy in enumerate(pool.imap(build_tiles, jobs)):
            for copy, inputs, classes, weights in per_copy:
                writer.append(inputs, classes, weights, i, copy)
    return n


def em_train(params: Params, store: Path, n: int, test: list, seconds: float,
             steps_per_s: float | None, workers: int) -> dict[str, object]:
    """Train on the ``n`` tiles of ``store`` for about ``seconds``; score the ``test`` slices.

    ``steps_per_s`` is the speed test's rate for this model, batch and precision on
    device-resident data (None when it was not measured): the run's shortfall from it is
    the share of time the device waited for the loader (which includes the compilation).
    """
    m, p, e = params.model, params.train, params.postprocess
    steps = max(1, int(seconds * (steps_per_s or 1.0)))
    batches = TileBatches(store, np.arange(n), p.batch_size, shuffle=True, seed=p.seed,
                          steps=steps, workers=workers)
    keras.utils.set_random_seed(p.seed)
    model = compiled_model(m, dataclasses.replace(p, epochs=1), steps_per_epoch=steps)
    start = time.perf_counter()
    history = model.fit(batches, epochs=1, verbose=0)
    train_s = time.perf_counter() - start
    batches.close()
    errors, rands = [], []
    card = network_card(m, p, params.prepare, backend=keras.backend.backend(), replicas=1,
                        epochs=1)
    segmenter = Segmenter(model, card, e, params.evaluate.batch_size)
    start = time.perf_counter()
    for s in test:
        labels = segmenter.segment(s.image)
        errors.append(pixel_error(s.mask, labels))
        rands.append(rand_error(s.mask, labels))
    return {"steps": steps, "batch_size": p.batch_size, "precision": p.mixed_precision,
            "lr": p.lr, "lr_schedule": p.lr_schedule,
            "train_s": round(train_s, 1), "samples_per_s": round(steps * p.batch_size / train_s, 2),
            "data_wait_share": (round(1 - steps / train_s / steps_per_s, 4) if steps_per_s
                                else None), "loader_workers": workers,
            "final_loss": round(float(history.history["loss"][-1]), 5),
            "predict_s": round(time.perf_counter() - start, 1), "tta": e.tta,
            "pixel_error": round(float(np.mean(errors)), 5),
            "pixel_error_per_slice": [round(v, 5) for v in errors],
            "rand_error": round(float(np.mean(rands)), 5),
            "peak_memory_gib_so_far": peak_memory_gib(jax.devices()[0])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tile", type=int, default=572, help="speed test input tile")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--precisions", default="bfloat16,float32")
    parser.add_argument("--bench-seconds", type=float, default=6.0, help="timed per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="the chip's dense bf16 peak (H100/H200 SXM: 989)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "isbi2012-em-gpu.yaml")
    parser.add_argument("--data", type=Path,
                        default=ROOT.parent / "shared" / "datasets" / "isbi2012-em")
    parser.add_argument("--holdout", type=int, default=6, help="last slices held out")
    parser.add_argument("--copies", type=int, default=None,
                        help="augmented copies per slice (default: the config's)")
    parser.add_argument("--em-seconds", type=float, default=150.0,
                        help="EM training time (0: skip)")
    parser.add_argument("--em-tile", type=int, help="override the config's model.tile_size")
    parser.add_argument("--em-depth", type=int, help="override the config's model.depth")
    parser.add_argument("--em-filters", type=int, help="override the config's model.base_filters")
    parser.add_argument("--workers", type=int,
                        help="loader processes for the EM run (default: the config's "
                             "train.workers)")
    args = parser.parse_args(argv)
    result: dict[str, object] = {"benchmark": "gpu_train", "backend": keras.backend.backend(),
                                 "keras": keras.__version__, "peak_tflops": args.peak_tflops}
    raw = yaml.safe_load(args.config.read_text()) or {}
    model_raw = raw.setdefault("model", {})
    for key, value in (("tile_size", args.em_tile), ("depth", args.em_depth),
                       ("base_filters", args.em_filters)):
        if value is not None:
            model_raw[key] = value
    params = params_from_dict(raw)
    copies = params.augment.copies if args.copies is None else args.copies
    with tempfile.TemporaryDirectory() as tmp:
        store, n, test = Path(tmp) / "train.h5", 0, []
        if args.em_seconds > 0:  # before JAX starts on the device: the augment pool forks
            samples = read_em(args.data)
            train, test = samples[:-args.holdout], samples[-args.holdout:]
            start = time.perf_counter()
            n = em_tiles(train, params, copies, store, os.cpu_count() or 1)
            result["em"] = {"config": str(args.config), "train_slices": [s.name for s in train],
                            "test_slices": [s.name for s in test], "tiles": n, "copies": copies,
                            "model": dataclasses.asdict(params.model),
                            "prepare_s": round(time.perf_counter() - start, 1)}
        device = jax.devices()[0]
        result.update(jax=jax.__version__, device=device.device_kind, platform=device.platform,
                      devices=jax.device_count())
        m = ModelParams(depth=args.depth, base_filters=args.filters, tile_size=args.tile)
        probe = compiled_model(m, TrainParams())
        result["model"] = {"tile": f"{m.tile_size}->{m.out_size}", "depth": m.depth,
                           "base_filters": m.base_filters,
                           "params_m": round(probe.count_params() / 1e6, 2),
                           "forward_gflop_per_sample": round(conv_flops(probe) / 1e9, 1)}
        keras.backend.clear_session()
        runs = sorted(((int(b), precision) for b in args.batches.split(",")
                       for precision in args.precisions.split(",")),
                      key=lambda r: (r[0], r[1] != "bfloat16"))
        result["speed"] = [speed(m, b, precision, args.bench_seconds, args.warmup,
                                 args.peak_tflops) for b, precision in runs]
        if args.em_seconds > 0:
            p, em = params.train, params.model
            precision = p.mixed_precision if p.mixed_precision != "none" else "float32"
            rate = {(r["batch"], r["precision"]): r["steps_per_s"] for r in result["speed"]}
            same = (em.tile_size, em.depth, em.base_filters, em.arch) == \
                (m.tile_size, m.depth, m.base_filters, "unet")
            steps_per_s = rate.get((p.batch_size, precision)) if same else None
            result["em"].update(em_train(params, store, n, test, args.em_seconds, steps_per_s,
                                         args.workers or p.workers))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
