import numpy as np

from unetseg.prepare.store import TileWriter
from unetseg.train.batches import TileBatches, split_by_sample


def test_split_by_sample_keeps_images_apart_and_validates_on_originals():
    sample = np.repeat(np.arange(10), 6)
    copy = np.tile(np.repeat([0, 1, 2], 2), 10)
    train, val = split_by_sample(sample, copy, 0.2, seed=3)
    assert set(sample[train]).isdisjoint(sample[val])
    assert len(set(sample[val])) == 2
    assert (copy[val] == 0).all()
    assert len(train) == 8 * 6
    again = split_by_sample(sample, copy, 0.2, seed=3)
    np.testing.assert_array_equal(again[1], val)
    train0, val0 = split_by_sample(sample, copy, 0.0, seed=3)
    assert len(val0) == 0 and len(train0) == len(sample)


def _store(path, n=10, i_s=8, o_s=4):
    with TileWriter(path, n, i_s, o_s, {}) as w:
        inputs = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, i_s, i_s), np.float32)
        w.append(inputs, np.ones((n, o_s, o_s), np.uint8), np.full((n, o_s, o_s), 2, np.float32),
                 0, 0)


def test_batches_have_model_shapes_and_cover_every_tile(tmp_path):
    _store(tmp_path / "t.h5")
    ds = TileBatches(tmp_path / "t.h5", np.arange(10), 4, shuffle=True, seed=0)
    assert len(ds) == 3
    seen = []
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape[1:] == (8, 8, 1) and x.dtype == np.float32
        assert y.shape[1:] == (4, 4, 2) and y.dtype == np.float32
        assert (y[..., 0] == 1).all() and (y[..., 1] == 2).all()
        seen.extend(x[:, 0, 0, 0].astype(int).tolist())
    assert sorted(seen) == list(range(10))
    first = ds[0][0][:, 0, 0, 0].copy()
    ds.on_epoch_end()
    assert not np.array_equal(first, ds[0][0][:, 0, 0, 0]) or len(first) < 2
    resumed = TileBatches(tmp_path / "t.h5", np.arange(10), 4, shuffle=True, seed=0)
    resumed.set_epoch(1)
    np.testing.assert_array_equal(resumed[0][0], ds[0][0])
    ds.close()
    resumed.close()


def test_fixed_steps_repeat_the_data(tmp_path):
    _store(tmp_path / "t.h5")
    ds = TileBatches(tmp_path / "t.h5", np.arange(10), 4, shuffle=True, seed=0, steps=7)
    assert len(ds) == 7
    assert all(ds[i][0].shape[0] == 4 for i in range(7))
    ds.close()


def test_distance_channels_are_computed_from_each_batch(tmp_path):
    with TileWriter(tmp_path / "d.h5", 3, 8, 12, {}) as w:
        classes = np.zeros((3, 12, 12), np.uint8)
        classes[:, 0:10, 2:10] = 1  # touches the top edge
        w.append(np.zeros((3, 8, 8), np.float32), classes, np.ones((3, 12, 12), np.float32), 0, 0)
    plain = TileBatches(tmp_path / "d.h5", np.arange(3), 2, shuffle=False, seed=0)
    ds = TileBatches(tmp_path / "d.h5", np.arange(3), 2, shuffle=False, seed=0, distance_clip=4.0)
    y = ds[0][1]
    assert plain[0][1].shape == (2, 12, 12, 2) and y.shape == (2, 12, 12, 4)
    np.testing.assert_array_equal(y[..., :2], plain[0][1])
    assert y[0, 6, 6, 2] == 1.0 and y[0, 9, 6, 2] == 0.25 and y[0, 11, 0, 2] == 0.0
    assert y[0, 0, 6, 3] == 0.0 and y[0, 9, 6, 3] == 1.0 and y[0, 6, 6, 3] == 1.0
    plain.close()
    ds.close()
