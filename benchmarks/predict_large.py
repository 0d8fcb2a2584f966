"""Segmenting large mosaics: seconds per megapixel and peak memory at 1024², 4096² and 8192².

Each size runs in a fresh process (so its peak RSS is its own) with the default network
(``params.yaml``'s model, random weights: speed and memory do not depend on the weights),
after one warm-up call. Goals (issue #27): peak RSS ≤ 2 GB at 4096² on the CPU, and time
linear in area: seconds per MP at 8192² within 1.2× of 1024². Also checks that the tiled
result equals one untiled pass of the same weights at 1024².

    python benchmarks/predict_large.py [--sizes 1024 4096 8192]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unetseg.runtime import configure_backend

configure_backend()

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines()
                  if line.startswith("model name")), platform.processor())
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model} ({isa})"


def _image(size: int) -> np.ndarray:
    from unetseg.data.synthetic import generate

    tile = generate(1, 256, 256, 18, 0)[0].image
    return np.tile(tile, (size // 256 + 1, size // 256 + 1))[:size, :size]


def _model_folder(folder: Path, tile_size: int | None = None) -> Path:
    import keras

    from unetseg.config import load_params
    from unetseg.infer.model_folder import POSTPROCESS_FILE, write_postprocess
    from unetseg.train.card import CARD_FILE, network_card, write_card
    from unetseg.train.models import build_model

    params = load_params(ROOT / "params.yaml")
    m = params.model
    if tile_size is not None:
        import dataclasses

        m = dataclasses.replace(m, tile_size=tile_size)
    keras.utils.set_random_seed(0)
    model = build_model(m.arch, depth=m.depth, base_filters=m.base_filters, padding=m.padding,
                        dropout=m.dropout, input_size=m.tile_size)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    card = network_card(m, params.train, params.prepare, backend=keras.backend.backend(),
                        replicas=1, epochs=0)
    write_card(folder / CARD_FILE, card)
    write_postprocess(folder / POSTPROCESS_FILE, params.postprocess, {})
    return folder


def _child(model_dir: Path, size: int) -> dict:
    from unetseg.infer.segmenter import Segmenter

    segmenter = Segmenter.load(model_dir)
    segmenter.segment(_image(256))
    image = _image(size)
    start = time.perf_counter()
    labels = segmenter.segment(image)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "seconds": round(seconds, 3),
            "s_per_mp": round(seconds / (size * size / 1e6), 4),
            "peak_rss_mb": round(rss, 1), "objects": int(labels.max()),
            "tiles": len(segmenter.grid(image.shape).positions)}


def _untiled_equals_tiled(model_dir: Path, size: int) -> float:
    from unetseg.infer.segmenter import Segmenter
    from unetseg.tiling import input_size_for

    tiled = Segmenter.load(model_dir)
    m = tiled.card.model
    big_dir = _model_folder(model_dir.parent / "untiled",
                            input_size_for(size, m.depth, m.padding))
    untiled = Segmenter.load(big_dir)
    untiled.model.set_weights(tiled.model.get_weights())
    image = _image(size)
    assert len(untiled.grid(image.shape).positions) == 1
    return float(np.abs(tiled.maps(image) - untiled.maps(image)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 8192])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.model_dir, args.child)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _model_folder(Path(tmp) / "model")
        runs = []
        for size in args.sizes:
            out = subprocess.run([sys.executable, __file__, "--child", str(size), "--model-dir",
                                  str(model_dir)], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        difference = _untiled_equals_tiled(model_dir, min(args.sizes))
    first, last = runs[0], runs[-1]
    print(json.dumps({
        "benchmark": "predict_large", "cpu": _cpu(), "runs": runs,
        "time_ratio_per_mp_largest_vs_smallest": round(last["s_per_mp"] / first["s_per_mp"], 3),
        "goal_time_ratio_at_most": 1.2,
        "peak_rss_mb_4096": next((r["peak_rss_mb"] for r in runs if r["size"] == 4096), None),
        "goal_peak_rss_mb_4096_at_most": 2048,
        f"tiled_vs_untiled_max_abs_diff_{min(args.sizes)}": difference,
    }, indent=2))


if __name__ == "__main__":
    main()
