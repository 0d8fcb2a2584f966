import hashlib
import time

import h5py
import numpy as np
import pytest

from unetseg.config import PrepareParams
from unetseg.errors import InputError
from unetseg.prepare.store import (
    PreparedReader,
    PreparedSample,
    TileReader,
    TileWriter,
    recorded_prepare,
    write_prepared,
)


def _samples(n=3):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        shape = (40 + i, 50)
        mask = rng.integers(0, 4, shape).astype(np.uint16)
        image = rng.integers(0, 255, shape).astype(np.uint8)
        out.append(PreparedSample(f"s{i}", f"origin{i}", image, mask, (mask > 0).astype(np.uint8),
                                  rng.random(shape).astype(np.float32)))
    return out


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_prepared_round_trip_and_determinism(tmp_path):
    samples = _samples()
    tiles = np.array([[0, 0, 0], [1, 0, 16], [2, 16, 0]], np.int32)
    for name in ("a.h5", "b.h5"):
        write_prepared(tmp_path / name, samples, {"in_size": 24, "prepare": {"w0": 10.0}}, tiles)
        time.sleep(1.1)  # HDF5 object timestamps have 1 s resolution: they must not be stored
    assert _digest(tmp_path / "a.h5") == _digest(tmp_path / "b.h5")
    with PreparedReader(tmp_path / "a.h5") as reader:
        assert reader.names == ["s0", "s1", "s2"] and len(reader) == 3
        assert reader.attr("prepare") == {"w0": 10.0}
        np.testing.assert_array_equal(reader.tiles, tiles)
        for got, want in zip(reader, samples, strict=True):
            assert got.name == want.name and got.origin == want.origin
            for key in ("image", "mask", "classes", "weights"):
                a, b = getattr(got, key), getattr(want, key)
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)


def test_tile_store_streams_requested_tiles_in_order(tmp_path):
    n, i_s, o_s = 7, 12, 4
    rng = np.random.default_rng(2)
    inputs = rng.random((n, i_s, i_s)).astype(np.float32)
    classes = rng.integers(0, 2, (n, o_s, o_s)).astype(np.uint8)
    weights = rng.random((n, o_s, o_s)).astype(np.float32)
    for name in ("t.h5", "u.h5"):
        with TileWriter(tmp_path / name, n, i_s, o_s, {"k": 1}) as writer:
            writer.append(inputs[:3], classes[:3], weights[:3], 0, 0)
            writer.append(inputs[3:], classes[3:], weights[3:], 1, 2)
        time.sleep(1.1)
    assert _digest(tmp_path / "t.h5") == _digest(tmp_path / "u.h5")
    with TileReader(tmp_path / "t.h5") as reader:
        assert len(reader) == n and reader.in_size == i_s and reader.out_size == o_s
        np.testing.assert_array_equal(reader.sample, [0, 0, 0, 1, 1, 1, 1])
        np.testing.assert_array_equal(reader.copy, [0, 0, 0, 2, 2, 2, 2])
        idx = np.array([5, 1, 5, 0])
        x, c, w = reader.read(idx)
        np.testing.assert_array_equal(x, inputs[idx])
        np.testing.assert_array_equal(c, classes[idx])
        np.testing.assert_array_equal(w, weights[idx])
        w2, c2 = reader.read(idx, ("weights", "classes"))
        np.testing.assert_array_equal(w2, weights[idx])
        np.testing.assert_array_equal(c2, classes[idx])


def test_tile_writer_refuses_short_store(tmp_path):
    with pytest.raises(RuntimeError, match="expected 2 tiles"), \
            TileWriter(tmp_path / "t.h5", 2, 4, 4, {}) as writer:
        writer.append(np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4), np.uint8),
                      np.zeros((1, 4, 4), np.float32), 0, 0)


@pytest.mark.parametrize("reader", [PreparedReader, TileReader])
def test_missing_or_foreign_store_is_a_one_line_input_error(tmp_path, reader):
    with pytest.raises(InputError, match="no such file"):
        reader(tmp_path / "missing.h5")
    (tmp_path / "foreign.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5 store") as info:
        reader(tmp_path / "foreign.h5")
    assert str(tmp_path / "foreign.h5") in str(info.value) and "\n" not in str(info.value)


def test_tile_reader_returns_tiles_in_the_asked_order_with_repeats(tmp_path):
    n = 6
    inputs = np.arange(n * 16, dtype=np.float32).reshape(n, 4, 4)
    with TileWriter(tmp_path / "t.h5", n, 4, 2, {}) as writer:
        writer.append(inputs, (inputs[:, :2, :2] % 2).astype(np.uint8), inputs[:, 1:3, 1:3], 0, 0)
    order = np.array([4, 1, 4, 0, 5, 1])
    with TileReader(tmp_path / "t.h5") as reader:
        got_inputs, got_classes, got_weights = reader.read(order)
        (only_weights,) = reader.read(order[::-1], ("weights",))
    np.testing.assert_array_equal(got_inputs, inputs[order])
    np.testing.assert_array_equal(got_classes, (inputs[order, :2, :2] % 2).astype(np.uint8))
    np.testing.assert_array_equal(got_weights, inputs[order, 1:3, 1:3])
    np.testing.assert_array_equal(only_weights, inputs[order[::-1], 1:3, 1:3])
    assert got_inputs.dtype == np.float32 and got_classes.dtype == np.uint8


def test_a_test_store_holds_images_and_masks_alone(tmp_path):
    samples = [PreparedSample(s.name, s.origin, s.image, s.mask) for s in _samples(2)]
    write_prepared(tmp_path / "test.h5", samples, {"in_size": 24})
    with PreparedReader(tmp_path / "test.h5") as reader, h5py.File(tmp_path / "test.h5") as f:
        assert "tiles" not in f and sorted(f["samples"]["s0"]) == ["image", "mask"]
        got = reader[1]
        assert got.classes is None and got.weights is None
        np.testing.assert_array_equal(got.mask, samples[1].mask)


def test_the_prepare_params_are_read_from_either_store(tmp_path):
    prepare = {"w0": 5.0, "sigma": 3.0, "balance": False, "separate_touching": True,
               "resample_factor": 0.5}
    write_prepared(tmp_path / "p.h5", _samples(1), {"prepare": prepare})
    with TileWriter(tmp_path / "t.h5", 0, 12, 4, {"prepare": prepare}):
        pass
    write_prepared(tmp_path / "old.h5", _samples(1), {"params": prepare})
    with PreparedReader(tmp_path / "p.h5") as a, TileReader(tmp_path / "t.h5") as b:
        assert recorded_prepare(a) == recorded_prepare(b) == PrepareParams(**prepare)
    with PreparedReader(tmp_path / "old.h5") as old, pytest.raises(InputError) as err:
        recorded_prepare(old)
    assert "old.h5" in str(err.value) and "re-run the prepare and augment stages" in str(err.value)
