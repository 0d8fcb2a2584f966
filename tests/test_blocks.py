"""Block geometry, label stitching across seams, exact levels, Zarr/TIFF I/O and bad input,
all without a network (the block-wise command end to end: tests/test_predict_blocks.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from scipy import ndimage

from unetseg.config import PostprocessParams
from unetseg.errors import InputError
from unetseg.images import as_frame, check_image, histogram_percentiles, label_dtype, normalize
from unetseg.infer.blocks import BlockLayout, block_boxes, box_slices, network_reach
from unetseg.infer.cluster import connect
from unetseg.infer.instances import label_maps
from unetseg.infer.large_images import create_ome_zarr, open_image, open_level0, write_tiled_tiff
from unetseg.infer.seams import block_cells, number_cells
from unetseg.score.matching import match_labels
from unetseg.tiling import tile_grid, tiles_over


@pytest.mark.parametrize("shape,block", [((600, 700), 128), ((128, 128), 128), ((5, 300), 64)])
def test_block_cores_cover_the_image_once(shape, block):
    count = np.zeros(shape, int)
    for box in block_boxes(shape, block):
        assert box[1] - box[0] <= block and box[3] - box[2] <= block
        count[box_slices(box)] += 1
    assert (count == 1).all()


@pytest.mark.parametrize("in_size,out_size,step", [(188, 100, 96), (60, 20, 20), (64, 64, 32)])
def test_network_boxes_start_on_the_tile_grid_and_hold_every_tile_over_the_core(
        in_size, out_size, step):
    shape = (700, 650)
    context, align = network_reach(in_size, out_size, step)
    assert align == step
    layout = BlockLayout(shape, 160, context, align, 64, 18)
    whole = tile_grid(shape, in_size, out_size, step)
    margin = (in_size - out_size) // 2
    for core in layout.cores:
        box = layout.network_box(core)
        assert box[0] % step == 0 and box[2] % step == 0
        assert box[1] in (shape[0], *range(0, shape[0], step))
        assert box[3] in (shape[1], *range(0, shape[1], step))
        needed = tiles_over(whole, core).positions
        for axis, (lo, hi) in enumerate((box[:2], box[2:])):
            # Each tile reads [p - margin, p + out + margin): inside the box, or mirrored at
            # the image's own edge exactly as the whole image mirrors it.
            assert lo == 0 or (needed[:, axis] - margin >= lo).all()
            assert hi == shape[axis] or (needed[:, axis] + out_size + margin <= hi).all()


def test_resampled_reach_is_aligned_only_where_the_step_is_whole_in_image_pixels():
    assert network_reach(188, 100, 96, 0.5)[1] == 192
    assert network_reach(188, 100, 96, 0.7)[1] == 1
    context, _ = network_reach(188, 100, 96, 0.5, offset=(-0.6, 0.2))
    assert context > network_reach(188, 100, 96, 0.5)[0]


def test_tiles_over_a_box_are_the_tiles_that_cover_its_pixels():
    grid = tile_grid((90, 130), 60, 20, 20)
    box = (25, 47, 61, 99)
    sub = tiles_over(grid, box)
    covered = np.zeros(grid.image_shape, bool)
    for y, x in sub.positions:
        covered[y: y + 20, x: x + 20] = True
    assert covered[box_slices(box)].all() and len(sub.positions) < len(grid.positions)
    others = [p for p in grid.positions.tolist() if p not in sub.positions.tolist()]
    for y, x in others:
        assert not (y < box[1] and y + 20 > box[0] and x < box[3] and x + 20 > box[2])


def test_neighbours_are_the_cores_a_label_box_reads():
    layout = BlockLayout((500, 430), 100, 50, 4, 40, 18)
    for core in layout.cores:
        y0, y1, x0, x1 = layout.label_box(core)
        brute = [i for i, c in enumerate(layout.cores)
                 if c[0] < y1 and y0 < c[1] and c[2] < x1 and x0 < c[3]]
        assert layout.neighbours(core) == brute


def _disks(shape, n, seed, radius=(3, 9), seams=(), block=1):
    """A probability map of bright disks, some centred on the block seams."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    prob = np.zeros(shape, np.float32)
    centres = [(rng.uniform(0, shape[0]), rng.uniform(0, shape[1])) for _ in range(n)]
    for k in seams:  # across horizontal and vertical seams, and on their crossings
        centres += [(k * block, rng.uniform(0, shape[1])), (rng.uniform(0, shape[0]), k * block),
                    (k * block + 0.5, k * block - 0.5)]
    for cy, cx in centres:
        r = rng.uniform(*radius)
        prob = np.maximum(prob, np.clip(1.2 - np.hypot(yy - cy, xx - cx) / r, 0, 1))
    return prob


def _stitched(prob, layout, post):
    """The label pass of the block-wise command, in memory: label every block's window,
    number the cells, paint every core."""
    cells = []
    for core in layout.cores:
        box = layout.label_box(core)
        window = prob[box_slices(box)]
        labels = label_maps(window[..., None], post)
        cells.append(block_cells(labels, window > post.threshold, box, core, layout.shape,
                                 layout.max_cell))
    numbering = number_cells([c.keys for c in cells], [c.owned for c in cells])
    assert numbering.unowned == 0
    out = np.zeros(layout.shape, np.int64)
    for core, c, lut in zip(layout.cores, cells, numbering.luts, strict=True):
        out[box_slices(core)] = lut[c.local]
    return out, numbering, sum(c.pieces for c in cells)


def _layout(shape, block=64, overlap=48, grow=1):
    return BlockLayout(shape, block, 0, 1, overlap, 2 * grow + 16)


@pytest.mark.parametrize("grow,fill", [(1, True), (0, False), (2, True)])
def test_components_stitched_across_seams_equal_the_whole_image_ids_included(grow, fill):
    prob = _disks((230, 300), 120, 0, seams=range(1, 4), block=64)
    post = PostprocessParams(min_size=5, grow_into_gaps_px=grow, fill_holes=fill,
                             instances="components")
    whole = label_maps(prob[..., None], post)
    stitched, numbering, pieces = _stitched(prob, _layout(prob.shape, overlap=64, grow=grow),
                                            post)
    assert pieces == 0 and numbering.total == whole.max() > 60
    assert len(_across_seams(whole, 64)) > 20
    np.testing.assert_array_equal(stitched, whole)


def _across_seams(labels, block):
    """The ids with pixels on both sides of a block seam."""
    ids = set()
    for image in (labels, labels.T):
        for k in range(block, image.shape[0], block):
            ids |= set(np.intersect1d(image[k - 1], image[k]).tolist())
    return ids - {0}


def test_watershed_cells_across_seams_are_matched_none_split_or_merged():
    prob = _disks((256, 256), 140, 1, radius=(5, 10), seams=range(1, 4), block=64)
    post = PostprocessParams(min_size=5, instances="watershed")
    whole = label_maps(prob[..., None], post)
    stitched, _, pieces = _stitched(prob, _layout(prob.shape, overlap=64), post)
    m = match_labels(whole, stitched, thresholds=(0.5, 0.95))
    assert pieces == 0 and whole.max() > 60 and len(_across_seams(whole, 64)) > 20
    assert m.tp[1] == whole.max() == stitched.max()
    assert m.count("reference", "split") == m.count("reference", "merged") == 0


def test_cells_larger_than_the_overlap_allows_become_counted_pieces():
    prob = _disks((200, 200), 30, 2, radius=(3, 6))
    prob[20:180, 95:105] = 1.0  # a 160 px long cell across three seams
    post = PostprocessParams(min_size=5)
    whole = label_maps(prob[..., None], post)
    stitched, numbering, pieces = _stitched(prob, _layout(prob.shape, overlap=40), post)
    assert pieces >= 3
    long_cell = whole[100, 100]
    assert len(np.unique(stitched[whole == long_cell])) == pieces
    small = (whole > 0) & (whole != long_cell)
    assert len(np.unique(whole[small])) == len(np.unique(stitched[small]))  # the rest is whole
    assert numbering.total == int(stitched.max())


def test_cells_the_blocks_disagree_on_keep_their_pixels_and_get_numbers_of_their_own():
    tables = [np.array([0, 5, 9, -1]), np.array([0, 9, 12, 7])]
    numbering = number_cells(tables, [np.array([5, 9]), np.array([12])])
    # whole cells 5, 9, 12 -> 1, 2, 3; then block 0's piece, block 1's unowned key 7
    assert [lut.tolist() for lut in numbering.luts] == [[0, 1, 2, 4], [0, 2, 3, 5]]
    assert numbering.total == 5 and numbering.unowned == 1
    with pytest.raises(ValueError, match="same cell"):
        number_cells(tables, [np.array([5, 9]), np.array([9])])


def test_more_than_65535_cells_are_numbered_into_uint32():
    dots = np.zeros((1040, 1040), np.float32)
    dots[::4, ::4] = dots[1::4, ::4] = dots[::4, 1::4] = dots[1::4, 1::4] = 1.0  # 2x2 cells
    post = PostprocessParams(min_size=1, grow_into_gaps_px=0)
    layout = BlockLayout(dots.shape, 256, 0, 1, 32, 16)
    stitched, numbering, _ = _stitched(dots, layout, post)
    assert numbering.total == 260 * 260 > 65535 and label_dtype(numbering.total) == np.uint32
    np.testing.assert_array_equal(stitched, label_maps(dots[..., None], post))


def test_histogram_percentiles_are_numpys_bit_for_bit():
    rng = np.random.default_rng(0)
    for trial in range(200):
        top = int(rng.choice([1, 255, 65535]))
        image = rng.integers(0, top + 1, int(rng.integers(1, 3000)))
        image = np.minimum(image, rng.integers(1, top + 1)).astype(np.uint16)
        pct = (float(rng.choice([0.0, 1.0, 2.5])), float(rng.choice([99.8, 100.0, 63.1])))
        want = tuple(float(v) for v in np.percentile(image.astype(np.float32), list(pct)))
        assert histogram_percentiles(np.bincount(image), pct) == want, trial
    image = rng.integers(0, 4000, (50, 60)).astype(np.uint16)
    levels = histogram_percentiles(np.bincount(image.ravel()))
    np.testing.assert_array_equal(normalize(image, levels=levels), normalize(image))


def test_blocks_of_a_float_image_convert_as_the_whole_image():
    image = np.random.default_rng(1).normal(100, 30, (40, 50)).astype(np.float32)
    lo, hi = image.min(), image.max()
    whole = check_image("x", image)
    np.testing.assert_array_equal(as_frame(image[10:30, 5:25], lo, hi), whole[10:30, 5:25])


def test_ome_zarr_and_tiled_tiff_round_trip_uint32(tmp_path):
    labels = np.random.default_rng(2).integers(0, 2**32 - 1, (300, 520), dtype=np.uint32)
    create_ome_zarr(tmp_path / "l.ome.zarr", labels.shape, 128, np.uint32, labels=True)[:] = labels
    attrs = dict(zarr.open_group(tmp_path / "l.ome.zarr", mode="r").attrs)
    scales = attrs["multiscales"][0]
    assert scales["version"] == "0.4" and [a["name"] for a in scales["axes"]] == ["y", "x"]
    assert "image-label" in attrs
    write_tiled_tiff(tmp_path / "l.tif", open_level0(tmp_path / "l.ome.zarr"), tile=128)
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        assert tif.pages[0].is_tiled and tif.pages[0].dtype == np.uint32
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), labels)
    lazy = open_image(tmp_path / "l.ome.zarr")
    np.testing.assert_array_equal(lazy.read((7, 99, 130, 400)), labels[7:99, 130:400])


def test_lazy_reads_of_ome_zarr_levels_and_tiffs_match_the_pixels(tmp_path):
    image = np.arange(90 * 110, dtype=np.uint16).reshape(90, 110)
    group = zarr.open_group(tmp_path / "v5.ome.zarr", mode="w")
    group.create_array("s0", shape=(1, 1, 90, 110), chunks=(1, 1, 32, 32), dtype=np.uint16)[:] \
        = image[None, None]
    group.create_array("s1", shape=(1, 1, 45, 55), dtype=np.uint16)
    axes = [{"name": n, "type": t} for n, t in (("c", "channel"), ("z", "space"),
                                                 ("y", "space"), ("x", "space"))]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [
        {"axes": axes, "datasets": [{"path": "s0"}, {"path": "s1"}]}]}
    tifffile.imwrite(tmp_path / "tiled.tif", image, tile=(32, 32), compression="zlib")
    tifffile.imwrite(tmp_path / "plain.tif", image[None])
    for name in ("v5.ome.zarr", "tiled.tif", "plain.tif"):
        lazy = open_image(tmp_path / name)
        assert lazy.shape == image.shape, name
        np.testing.assert_array_equal(lazy.read((5, 77, 30, 101)), image[5:77, 30:101])


@pytest.mark.parametrize("shape", [(3, 40, 50), (40,), (2, 1, 30, 30)])
def test_a_zarr_array_with_the_wrong_axes_is_refused_in_one_line(tmp_path, shape):
    zarr.open_array(tmp_path / "bad.zarr", mode="w", shape=shape, dtype=np.uint8)
    with pytest.raises(InputError) as err:
        open_image(tmp_path / "bad.zarr")
    message = str(err.value)
    assert "bad.zarr" in message and str(shape) in message and "\n" not in message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_that_does_not_answer_is_one_line():
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(InputError, match=f"^{address}: no dask scheduler answered within 1 s$"):
        connect(address, timeout=1)
    with pytest.raises(InputError, match="not a dask scheduler address"):
        connect("localhost", timeout=1)


@pytest.fixture
def model_folder(tmp_path) -> Path:
    """A model folder whose card and post-processing are real; its weights are never loaded,
    as these inputs fail before."""
    from unetseg.config import ModelParams, PrepareParams, TrainParams
    from unetseg.infer.model_folder import POSTPROCESS_FILE, write_postprocess
    from unetseg.train.card import CARD_FILE, network_card, write_card

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"never read")
    m = ModelParams(depth=2, base_filters=4, tile_size=60, dropout=0.0)
    write_card(folder / CARD_FILE, network_card(m, TrainParams(), PrepareParams(),
                                                backend="tensorflow", replicas=1, epochs=0))
    write_postprocess(folder / POSTPROCESS_FILE, PostprocessParams(grow_into_gaps_px=1), {})
    return folder


def _predict(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unetseg", "predict", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_the_command_refuses_bad_arrays_and_silent_schedulers_in_one_line(tmp_path,
                                                                           model_folder):
    zarr.open_array(tmp_path / "stack.zarr", mode="w", shape=(3, 40, 50), dtype=np.uint8)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, ndimage.gaussian_filter(
        np.random.default_rng(0).random((80, 90)), 2).astype(np.float32))
    address = f"tcp://127.0.0.1:{_free_port()}"
    cases = [([tmp_path / "stack.zarr"], "Zarr array has shape (3, 40, 50)"),
             ([good, "--scheduler", address, "--scheduler-timeout", "1"],
              f"{address}: no dask scheduler answered within 1 s"),
             ([good, "--blocks", "--block-overlap", "10"], "--block-overlap: must exceed 18")]
    for args, expected in cases:
        result = _predict(model_folder, *args, "--out", tmp_path / "out")
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1, result.stderr
        assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
        assert expected in errors[0]
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
