"""``unetseg predict`` block by block on dask: equal to a whole-image pass, on a cluster, with
more than 65,535 cells. Tiny networks: a random-weight U-Net, and a "threshold network"
(crop + 1x1 convolution: probability = sigmoid of the normalised intensity) whose cells are
the bright disks we draw, many of them across block seams."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from unetseg import cli
from unetseg.config import ModelParams, PostprocessParams, PrepareParams, TrainParams
from unetseg.data.synthetic import generate
from unetseg.images import write_png
from unetseg.infer import predict
from unetseg.infer.blocks import seam_guard
from unetseg.infer.large_images import create_ome_zarr, open_level0
from unetseg.infer.model_folder import POSTPROCESS_FILE, write_postprocess
from unetseg.infer.segmenter import Segmenter
from unetseg.score.matching import match_labels
from unetseg.tiling import output_size
from unetseg.train.card import CARD_FILE, network_card, write_card
from unetseg.train.models import build_model

pytestmark = pytest.mark.slow

TILE = 60  # depth 2, valid: 60 -> 20


def _folder(path: Path, model: keras.Model, post: PostprocessParams, scale: float = 1.0) -> Path:
    path.mkdir(parents=True)
    model.save(path / "model.keras")
    m = ModelParams(depth=2, base_filters=4, tile_size=TILE, dropout=0.0)
    write_card(path / CARD_FILE, network_card(m, TrainParams(),
                                              PrepareParams(resample_factor=scale),
                                              backend=keras.backend.backend(), replicas=1,
                                              epochs=0))
    write_postprocess(path / POSTPROCESS_FILE, post, {})
    return path


@pytest.fixture(scope="module", params=[1.0, 0.5], ids=["full", "resampled x0.5"])
def unet(tmp_path_factory, request) -> Path:
    """A random-weight U-Net; at threshold 0.7 it finds some 600 small objects."""
    model = build_model("unet", depth=2, base_filters=4, padding="valid", dropout=0.0,
                        input_size=TILE)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return _folder(tmp_path_factory.mktemp("unet") / "model", model,
                   PostprocessParams(threshold=0.7, min_size=5, instances="components",
                                     grow_into_gaps_px=1),
                   request.param)


@pytest.fixture(scope="module")
def threshold_net(tmp_path_factory) -> Path:
    """Cell probability = sigmoid(40 (x - 0.5)) of the normalised intensity x."""
    margin = (TILE - output_size(TILE, 2, "valid")) // 2
    model = keras.Sequential([keras.Input((TILE, TILE, 1)), keras.layers.Cropping2D(margin),
                              keras.layers.Conv2D(2, 1)])
    model.layers[-1].set_weights([np.array([[[[-20.0, 20.0]]]], np.float32),
                                  np.array([10.0, -10.0], np.float32)])
    return _folder(tmp_path_factory.mktemp("threshold") / "model", model,
                   PostprocessParams(min_size=5, instances="components"))


def _disks(shape, n, seed, block):
    """Bright disks on a noisy background, half of them centred on block seams."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = 30 + rng.normal(0, 4, shape)
    for k in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        if k % 4 == 0:
            cy = block * rng.integers(1, shape[0] // block + 1)
        if k % 4 == 1:
            cx = block * rng.integers(1, shape[1] // block + 1)
        image[np.hypot(yy - cy, xx - cx) < rng.uniform(3, 8)] = 200 + rng.normal(0, 4)
    return np.clip(image, 0, 255).astype(np.uint8)


def _run(*args) -> None:
    assert cli.run(predict.run, [str(a) for a in args]) == 0


def _read(path: Path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else np.asarray(open_level0(path))


def _extent(labels: np.ndarray) -> int:
    return max(max(s[0].stop - s[0].start, s[1].stop - s[1].start)
               for s in ndimage.find_objects(labels) if s is not None)


def _seam_cells(labels: np.ndarray, block: int) -> int:
    ids: set[int] = set()
    for image in (labels, labels.T):
        for k in range(block, image.shape[0], block):
            ids |= set(np.intersect1d(image[k - 1], image[k]).tolist())
    return len(ids - {0})


def test_a_random_unet_block_by_block_equals_the_whole_image_from_zarr_and_tiff(unet, tmp_path):
    image = generate(1, 600, 700, 60, 0)[0].image
    create_ome_zarr(tmp_path / "cells.ome.zarr", image.shape, 256, image.dtype,
                    labels=False)[:] = image
    tifffile.imwrite(tmp_path / "cells.tif", image, tile=(128, 128), compression="zlib")
    whole, prob = Segmenter.load(unet).segment(image, probability=True)
    overlap = _extent(whole) + seam_guard(1) + 1
    assert whole.max() > 300 and _seam_cells(whole, 128) > 30
    for name, extra in (("cells.ome.zarr", []), ("cells.tif", ["--blocks"])):
        _run(unet, tmp_path / name, "--out", tmp_path / "out", "--block-size", 128,
             "--block-overlap", overlap, "--probabilities", *extra)
    for out in ("cells.ome.zarr", "cells.tif"):
        np.testing.assert_array_equal(_read(tmp_path / "out" / out), whole)
    for out in ("cells_prob.ome.zarr", "cells_prob.tif"):
        np.testing.assert_allclose(_read(tmp_path / "out" / out), prob, rtol=0, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cells.ome.zarr", "cells.tif", "cells_prob.ome.zarr", "cells_prob.tif"]


@pytest.mark.parametrize("instances", ["components", "watershed"])
def test_many_cells_across_seams_are_one_cell_each(threshold_net, tmp_path, instances):
    image = _disks((600, 700), 600, 1, 128)
    tifffile.imwrite(tmp_path / "disks.tif", image)
    whole = Segmenter.load(threshold_net, instances=instances).segment(image)
    assert whole.max() > 300 and _seam_cells(whole, 128) > 100
    _run(threshold_net, tmp_path / "disks.tif", "--out", tmp_path / "out", "--block-size", 128,
         "--instances", instances, "--format", "zarr", "--batch-size", 32)
    blocks = _read(tmp_path / "out" / "disks.ome.zarr")
    m = match_labels(whole, blocks, thresholds=(0.5, 0.95))
    assert m.tp[1] == whole.max() == blocks.max()
    assert m.count("reference", "split") == m.count("reference", "merged") == 0
    if instances == "components":
        np.testing.assert_array_equal(blocks, whole)


def test_a_cluster_segments_the_blocks_and_the_other_images(threshold_net, tmp_path):
    from distributed import Client, LocalCluster, get_task_stream

    folder = tmp_path / "in"
    folder.mkdir()
    big, small = _disks((300, 330), 200, 2, 96), _disks((100, 120), 20, 3, 96)
    create_ome_zarr(folder / "big.ome.zarr", big.shape, 128, big.dtype, labels=False)[:] = big
    write_png(folder / "small.png", small)  # PNGs are segmented whole, even with --block-size
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            get_task_stream(client) as stream:
        _run(threshold_net, folder, "--out", tmp_path / "out", "--block-size", 96,
             "--scheduler", cluster.scheduler_address)
        workers = set(client.scheduler_info()["workers"])
    done = {(str(t["key"]), t["worker"]) for t in stream.data}  # every task the scheduler ran
    predicted = {key.rsplit("-", 1)[1]: worker for key, worker in done if "predict-block" in key}
    assert sorted(predicted, key=int) == [str(i) for i in range(16)]  # 4 x 4 blocks of 96 px
    assert set(predicted.values()) == workers and len(workers) == 2
    assert len({key for key, _ in done if "label-block" in key}) == 16
    assert [w for key, w in done if "segment-image" in key][0] in workers
    segmenter = Segmenter.load(threshold_net)
    np.testing.assert_array_equal(_read(tmp_path / "out" / "big.ome.zarr"),
                                  segmenter.segment(big))
    np.testing.assert_array_equal(_read(tmp_path / "out" / "small.tif"), segmenter.segment(small))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big.ome.zarr", "small.tif"]


def test_more_than_65535_cells_are_uint32_but_refused_in_the_challenge_layout(threshold_net,
                                                                            tmp_path, capsys):
    dots = np.full((1040, 1040), 20, np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            dots[dy::4, dx::4] = 220  # 260 x 260 cells of 2 x 2 px
    tifffile.imwrite(tmp_path / "dots.tif", dots)
    args = ["--min-size", 1, "--batch-size", 64, "--out"]
    _run(threshold_net, tmp_path / "dots.tif", *args, tmp_path / "whole")
    _run(threshold_net, tmp_path / "dots.tif", *args, tmp_path / "blocks", "--format", "zarr",
         "--block-size", 256)
    whole, blocks = _read(tmp_path / "whole" / "dots.tif"), _read(tmp_path / "blocks" /
                                                                   "dots.ome.zarr")
    assert whole.dtype == blocks.dtype == np.uint32 and whole.max() == 260 * 260
    np.testing.assert_array_equal(blocks, whole)
    (tmp_path / "01").mkdir()
    tifffile.imwrite(tmp_path / "01" / "t000.tif", dots)
    capsys.readouterr()
    for extra in ([], ["--block-size", 256]):
        argv = [threshold_net, tmp_path / "01", *args, tmp_path / "ctc", *extra]
        assert cli.run(predict.run, [str(a) for a in argv]) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: "), errors
        assert "67600 cells, more than the 65535 a 16-bit challenge mask holds" in errors[0]
        assert not (tmp_path / "ctc").exists()
