"""Train/test split of annotated pairs (unetseg.data.pairs): GT/ST pools and the split gap."""

from __future__ import annotations

import numpy as np
import pytest

from unetseg.data.pairs import (
    COMPLETE_OVERLAP,
    Sample,
    complete_with,
    hold_out,
    hold_out_sequences,
    split_annotated,
    split_samples,
    training_pool,
)
from unetseg.errors import InputError


def _sample(frame: int | None, annotation: str = "gt", sequence: str = "02") -> Sample:
    name = f"{sequence}_t{frame:03d}" if frame is not None else f"em_{sequence}"
    mask = np.full((2, 2), 1 if annotation == "gt" else 2, np.uint16)
    return Sample(name=name, image=np.zeros((2, 2), np.uint8), mask=mask,
                  origin=f"{annotation}:{name}", annotation=annotation,  # type: ignore[arg-type]
                  sequence=sequence if frame is not None else "", frame=frame)


GT_FRAMES = [10, 17, 20, 22, 35, 36, 49, 51, 59, 74, 85, 92, 112]  # as PhC-C2DH-U373's 02
ST_FRAMES = [*range(14), *range(32, 36), *range(58, 72), *range(83, 101), 112, 113, 114]
GT = [_sample(n) for n in GT_FRAMES]
ST = [_sample(n, "st") for n in ST_FRAMES]


def _names(samples: list[Sample]) -> list[tuple[str, str]]:
    return [(s.name, s.annotation) for s in samples]


def test_pools_take_gt_where_a_frame_has_it_and_st_elsewhere() -> None:
    assert _names(training_pool(GT, ST, "gt")) == _names(GT)
    assert _names(training_pool(GT, ST, "st")) == _names(ST)
    both = training_pool(GT, ST, "gt+st")
    frames = sorted(set(GT_FRAMES) | set(ST_FRAMES))
    assert [s.frame for s in both] == frames, "one pair per frame, in frame order"
    assert {s.frame for s in both if s.annotation == "gt"} == set(GT_FRAMES)
    assert len(both) == 13 + 53 - 6


def _frame(mask: np.ndarray, annotation: str) -> Sample:
    return Sample(name="01_t067", image=np.zeros(mask.shape, np.uint8), mask=mask,
                  origin=f"01/t067.tif + 01_{annotation.upper()}/SEG/man_seg067.tif",
                  annotation=annotation, sequence="01", frame=67)  # type: ignore[arg-type]


def _cells(shape, boxes) -> np.ndarray:
    mask = np.zeros(shape, np.uint16)
    for label, (y0, y1, x0, x1) in enumerate(boxes, 1):
        mask[y0:y1, x0:x1] = label
    return mask


def test_a_partial_gt_mask_is_completed_by_the_cells_it_left_out() -> None:
    gt = _frame(_cells((20, 30), [(0, 10, 0, 10)]), "gt")
    # ST: another outline of GT's cell, a cell GT left out, and one lying 10 % on GT's cell
    st = _frame(_cells((20, 30), [(1, 9, 1, 11), (12, 20, 0, 10), (0, 10, 9, 19)]), "st")
    done = complete_with(gt, st)
    assert done.annotation == "gt+st" and "2 cells of 01_ST/SEG/man_seg067.tif" in done.origin
    assert done.mask.dtype == np.uint16
    np.testing.assert_array_equal(done.mask[gt.mask > 0], gt.mask[gt.mask > 0])
    assert set(np.unique(done.mask[12:20, 0:10])) == {2}, "the left-out cell joins"
    assert set(np.unique(done.mask[0:10, 10:19])) == {3} and done.mask[0, 9] == 1, \
        "a cell barely on GT joins where GT has no label"
    assert COMPLETE_OVERLAP >= 1 / 10


def test_a_complete_gt_mask_is_kept_as_it_is() -> None:
    gt = _frame(_cells((20, 30), [(0, 10, 0, 10), (12, 20, 0, 10)]), "gt")
    st = _frame(_cells((20, 30), [(0, 11, 0, 11), (11, 20, 0, 12)]), "st")
    assert complete_with(gt, st) is gt
    pool = training_pool([gt], [st], "gt+st")
    assert len(pool) == 1 and pool[0] is gt


def test_the_pool_completes_gt_frames_from_their_own_st() -> None:
    gt = _frame(_cells((8, 8), [(0, 4, 0, 4)]), "gt")
    st = _frame(_cells((8, 8), [(5, 8, 5, 8)]), "st")
    (both,) = training_pool([gt], [st], "gt+st")
    assert both.annotation == "gt+st" and both.mask.max() == 2
    (only_gt,) = training_pool([gt], [st], "gt")
    assert only_gt is gt


@pytest.mark.parametrize("annotations", ["gt", "st", "gt+st"])
def test_test_frames_are_the_seeded_gt_frames_whatever_trains(annotations: str) -> None:
    _, expected = split_samples(GT, 0.25, 0)
    split = split_annotated(GT, ST, annotations, 0.25, 0, 3)  # type: ignore[arg-type]
    assert _names(split.test) == _names(expected) and len(split.test) == 3
    assert all(s.annotation == "gt" for s in split.test), "scored against GT only"
    test_frames = {s.frame for s in split.test}
    for s in split.train:
        assert min(abs(s.frame - t) for t in test_frames) > 3, s.name
    trained = {s.frame for s in split.train}
    out = {o.sample.frame for o in split.left_out}
    assert not trained & out and not trained & test_frames
    pool = {s.frame for s in training_pool(GT, ST, annotations)}  # type: ignore[arg-type]
    assert trained | out | test_frames >= pool
    for o in split.left_out:
        near = next(s for s in split.test if s.name == o.near)
        assert o.distance == abs(o.sample.frame - near.frame) <= 3


def test_gap_on_the_u373_seeded_split() -> None:
    split = split_annotated(GT, ST, "gt+st", 0.25, 0, 3)
    assert [s.frame for s in split.test] == [20, 51, 85]
    left = sorted((o.sample.frame, o.sample.annotation, o.near, o.distance) for o in split.left_out)
    assert left == [(17, "gt", "02_t020", 3), (22, "gt", "02_t020", 2), (49, "gt", "02_t051", 2),
                    (83, "st", "02_t085", 2), (84, "st", "02_t085", 1), (86, "st", "02_t085", 1),
                    (87, "st", "02_t085", 2), (88, "st", "02_t085", 3)]
    assert len(split.train) == 60 - 3 - 8
    assert sum(s.annotation == "st" for s in split.train) == 47 - 5
    gt_only = split_annotated(GT, ST, "gt", 0.25, 0, 3)
    assert [s.frame for s in gt_only.train] == [10, 35, 36, 59, 74, 92, 112]


def test_a_test_frames_own_st_mask_never_trains() -> None:
    split = split_annotated(GT, ST, "st", 0.25, 0, 0)
    assert [s.frame for s in split.test] == [20, 51, 85]
    assert [(o.sample.name, o.sample.annotation, o.distance) for o in split.left_out] \
        == [("02_t085", "st", 0)]
    assert 85 not in {s.frame for s in split.train} and len(split.train) == 52


def test_no_gap_keeps_every_other_frame() -> None:
    split = split_annotated(GT, ST, "gt", 0.25, 0, 0)
    assert not split.left_out and len(split.train) == 10


def test_gap_stays_within_a_sequence() -> None:
    other = [_sample(n, "st", "01") for n in (19, 20, 21)]
    split = split_annotated(GT, [*ST, *other], "gt+st", 0.25, 0, 3)
    assert {s.name for s in other} <= {s.name for s in split.train}


def test_pairs_outside_a_sequence_split_as_before() -> None:
    em = [_sample(None, sequence=str(k)) for k in range(24)]
    split = split_annotated(em, [], "gt", 0.25, 0, 3)
    train, test = split_samples(em, 0.25, 0)
    assert _names(split.train) == _names(train) and _names(split.test) == _names(test)
    assert not split.left_out


def test_hold_out_applies_the_gap_to_shared_sequences_only() -> None:
    held = [_sample(n) for n in (20, 51)]
    pool = training_pool([s for s in GT if s.frame not in (20, 51)], ST, "gt+st")
    same = hold_out(pool, held, 2, {"02"})
    assert sorted(o.sample.frame for o in same.left_out) == [22, 49]
    assert _names(same.test) == _names(held)
    different = hold_out(pool, held, 2, set())
    assert not different.left_out and len(different.train) == len(pool)
    copy = hold_out(training_pool(GT, ST, "st"), [_sample(10)], 0, {"02"})
    assert [(o.sample.name, o.distance) for o in copy.left_out] == [("02_t010", 0)], \
        "a held-back copy of a training frame is left out of training"


def test_gap_that_leaves_nothing_to_train_is_an_error() -> None:
    frames = [_sample(n) for n in (1, 2, 3)]
    with pytest.raises(InputError, match="ingest.split_gap: 5 leaves no training frames"):
        split_annotated(frames, [], "gt", 0.34, 0, 5)
    assert len(split_annotated(frames, [], "gt", 0.34, 0, 0).train) == 2


def test_holding_out_a_sequence_tests_its_gt_and_trains_on_the_others() -> None:
    other_gt = [_sample(n, sequence="01") for n in (1, 5, 6)]
    other_st = [_sample(n, "st", "01") for n in range(8)]
    split = hold_out_sequences([*other_gt, *GT], [*other_st, *ST], "gt+st", ["02"])
    assert _names(split.test) == _names(GT), "every GT frame of 02, nothing else"
    assert {s.sequence for s in split.train} == {"01"} and not split.left_out
    assert [(s.frame, s.annotation) for s in split.train] == \
        [(n, "gt" if n in (1, 5, 6) else "st") for n in range(8)], "no gap: 01 shares no frame"
    assert split.protocol == "sequences 02 held out"
    both = hold_out_sequences([*other_gt, *GT], [], "gt", ["02", "01"])
    assert both.train == [] and len(both.test) == 16
    assert both.protocol == "sequences 02, 01 held out"


def test_each_split_names_its_protocol() -> None:
    assert split_annotated(GT, ST, "gt", 0.25, 0, 3).protocol == \
        "seeded split of the GT pairs: test_fraction 0.25, seed 0, split_gap 3"
    assert hold_out(GT[1:], GT[:1], 2, {"02"}).protocol == \
        "separate test set, split_gap 2 in the sequences it shares"
