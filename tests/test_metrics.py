"""Metric core: hand-computed cases, conventions, batching and input types."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mrseg import metrics as mt

# --- the 2x2 example computed by hand -------------------------------------------------------
# samples S1 = [[1,0],[0,0]], S2 = [[1,1],[0,0]]; raters Y1 = [[1,0],[1,0]], Y2 = empty.
# d(S1,Y1) = 1 - 1/2, d(S1,Y2) = 1, d(S2,Y1) = 1 - 1/3, d(S2,Y2) = 1      -> d_sy = 19/24
# d_ss: d(S1,S2) = 1/2 twice, self-pairs 0                                  -> d_ss = 1/4
# d_yy: d(Y1,Y2) = 1 twice, d(Y1,Y1) = 0, d(Y2,Y2) = empty_pair_distance   -> (2 + e) / 4
S = np.array([[[1, 0], [0, 0]], [[1, 1], [0, 0]]], dtype=np.uint8)
Y = np.array([[[1, 0], [1, 0]], [[0, 0], [0, 0]]], dtype=np.uint8)


def test_ged_2x2_by_hand_both_conventions():
    assert mt.ged(S, Y) == pytest.approx(2 * 19 / 24 - 1 / 4 - 2 / 4)  # 5/6
    assert mt.ged(S, Y, empty_pair_distance=1.0) == pytest.approx(2 * 19 / 24 - 1 / 4 - 3 / 4)  # 7/12
    terms = mt.diversity(S, Y)
    assert terms == pytest.approx({"d_sy": 19 / 24, "d_ss": 1 / 4, "d_yy": 1 / 2})


def test_dice_match_2x2_by_hand():
    # Dice (raters x samples): Y1: [2/3, 1/2], Y2: [0, 0]; best assignment Y1-S1, Y2-S2
    mean, per_rater = mt.dice_match(S, Y)
    assert per_rater == pytest.approx([2 / 3, 0.0])
    assert mean == pytest.approx(1 / 3)
    assert mt.per_expert_dice(S, Y) == pytest.approx([2 / 3, 0.0])


def test_hm_iou_2x2_by_hand():
    # IoU (samples x raters): S1: [1/2, 0], S2: [1/3, 0]; best matching S1-Y1, S2-Y2 -> (1/2 + 0) / 2
    assert mt.hm_iou(S, Y) == pytest.approx(0.25)


def test_dice_soft_2x2_by_hand():
    # mean prediction [[1, .5], [0, 0]], mean rater mask [[.5, 0], [.5, 0]]
    # t = .1, .3: pred {(0,0),(0,1)}, label {(0,0),(1,0)} -> 2*1/4 = .5 ; t = .5, .7, .9: pred {(0,0)}, label {} -> 0
    assert mt.dice_soft(S.astype(np.float32), Y) == pytest.approx((0.5 + 0.5) / 5)
    assert mt.dice_soft(S.astype(np.float32), Y, thresholds=(0.3,)) == pytest.approx(0.5)


def test_empty_vs_empty_under_both_conventions():
    empty = np.zeros((1, 4, 4), dtype=bool)
    # one empty sample against one empty rater: every term is d(empty, empty)
    assert mt.diversity(empty, empty) == pytest.approx({"d_sy": 0.0, "d_ss": 0.0, "d_yy": 0.0})
    assert mt.diversity(empty, empty, 1.0) == pytest.approx({"d_sy": 1.0, "d_ss": 1.0, "d_yy": 1.0})
    assert mt.ged(empty, empty) == 0.0 and mt.ged(empty, empty, 1.0) == 0.0
    # samples {empty, A} vs one empty rater: the conventions disagree
    a = np.zeros((4, 4), dtype=bool)
    a[1:3, 1:3] = True
    samples = np.stack([empty[0], a])
    # e=0: d_sy = (0+1)/2, d_ss = (0+1+1+0)/4, d_yy = 0 -> 1 - 1/2 = 1/2
    assert mt.ged(samples, empty) == pytest.approx(0.5)
    # e=1: d_sy = (1+1)/2, d_ss = (1+1+1+0)/4, d_yy = 1 -> 2 - 3/4 - 1 = 1/4
    assert mt.ged(samples, empty, 1.0) == pytest.approx(0.25)
    # Dice of two empty masks is 1; IoU of two empty masks is 1 for HM-IoU
    assert mt.dice_match(empty, empty) == (1.0, pytest.approx([1.0]))
    assert mt.hm_iou(empty, empty) == 1.0
    assert mt.dice_soft(empty.astype(np.float32), empty) == 1.0


def test_disjoint_masks():
    a = np.zeros((1, 6, 6), dtype=bool)
    b = np.zeros((1, 6, 6), dtype=bool)
    a[0, :2, :2] = True
    b[0, 4:, 4:] = True
    assert mt.ged(a, b) == pytest.approx(2.0)  # d_sy = 1, self-pairs 0
    assert mt.dice_match(a, b)[0] == 0.0
    assert mt.hm_iou(a, b) == 0.0


def test_identical_sets_have_zero_ged():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 8, 8)) > 0.5
    assert mt.ged(masks, masks) == pytest.approx(0.0, abs=1e-12)
    assert mt.ged(masks[[2, 0, 1]], masks) == pytest.approx(0.0, abs=1e-12)
    assert mt.dice_match(masks, masks)[0] == pytest.approx(1.0)
    assert mt.hm_iou(masks, masks) == pytest.approx(1.0)


def test_ged_depends_on_sample_count_through_self_pairs():
    # M mutually disjoint samples, one rater disjoint from all: d_sy = 1, d_yy = 0, d_ss = 1 - 1/M
    def case(m):
        samples = np.zeros((m, 1, 2 * m + 2), dtype=bool)
        for i in range(m):
            samples[i, 0, 2 * i] = True
        rater = np.zeros((1, 1, 2 * m + 2), dtype=bool)
        rater[0, 0, -1] = True
        return samples, rater

    for m in (1, 2, 4, 10):
        assert mt.ged(*case(m)) == pytest.approx(1 + 1 / m)


def test_rectangular_vs_balanced_matching():
    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    a[:2] = True
    b[2:] = True
    raters = np.stack([a, b])
    samples = np.stack([a, a, a, b])
    # rectangular "best N of M": each rater finds its exact copy
    assert mt.dice_match(samples, raters)[0] == 1.0
    # balanced lcm(4, 2) = 4: raters appear twice each, so one `a` sample must pair with `b`
    assert mt.hm_iou(samples, raters) == pytest.approx(0.75)


def test_fewer_samples_than_raters_leaves_unmatched_raters_nan():
    a = np.zeros((1, 4, 4), dtype=bool)
    a[0, 0, 0] = True
    raters = np.concatenate([a, np.zeros_like(a)])
    mean, per = mt.dice_match(a, raters)
    assert per[0] == 1.0 and np.isnan(per[1]) and mean == 1.0


def test_numpy_torch_and_dtypes_agree():
    rng = np.random.default_rng(1)
    probs = rng.random((5, 12, 12)).astype(np.float32)
    raters = (rng.random((3, 12, 12)) > 0.6).astype(np.uint8)
    variants = [
        (probs, raters),
        (torch.from_numpy(probs), torch.from_numpy(raters)),
        (probs > 0.5, raters.astype(bool)),
        (torch.from_numpy(probs > 0.5).float(), torch.from_numpy(raters).float()),
    ]
    ref = mt.ged(*variants[0]), mt.dice_match(*variants[0])[0], mt.hm_iou(*variants[0])
    for s, y in variants[1:]:
        assert (mt.ged(s, y), mt.dice_match(s, y)[0], mt.hm_iou(s, y)) == pytest.approx(ref)
    assert mt.dice_soft(torch.from_numpy(probs), torch.from_numpy(raters)) == pytest.approx(mt.dice_soft(probs, raters))
    assert mt.case_metrics(torch.from_numpy(probs), raters) == pytest.approx(mt.case_metrics(probs, raters), nan_ok=True)
    frozen = raters.copy()
    frozen.setflags(write=False)  # like a memory-mapped dataset cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mt.ged(probs, frozen) == pytest.approx(ref[0])


def _random_cases(b=7, m=6, n=4, size=16, seed=2):
    rng = np.random.default_rng(seed)
    probs = np.zeros((b, m, size, size), dtype=np.float32)
    raters = np.zeros((b, n, size, size), dtype=np.uint8)
    for i in range(b):
        r, c, w = rng.integers(0, size - 6), rng.integers(0, size - 6), rng.integers(1, 6)
        probs[i, :, r:r + w, c:c + w] = rng.random((m, 1, 1))
        raters[i, :, r:r + w + 1, c:c + w] = rng.random((n, 1, 1)) > 0.2
        probs[i] += 0.06 * rng.random((m, size, size))
    probs[0] = 0.0  # a case with no foreground at all
    raters[1] = 0
    probs[2, 1, 0, 0] = 0.9  # a stray pixel far from the rest
    return probs, raters


def test_batched_equals_per_case():
    probs, raters = _random_cases()
    frame = mt.evaluate_cases(probs, raters)
    assert list(frame.columns) == ["M", "ged", "ged_dpersona", "dice_match", "dice_expert_0", "dice_expert_1",
                                   "dice_expert_2", "dice_expert_3", "dice_soft", "hm_iou", "d_sy", "d_ss", "d_yy"]
    ged1 = mt.ged_batch(probs, raters, 1.0)
    dm, per = mt.dice_match_batch(probs, raters)
    for i in range(len(probs)):
        row = mt.case_metrics(probs[i], raters[i])
        assert row == pytest.approx(frame.iloc[i].to_dict())
        assert row["M"] == 6
        assert row["ged"] == pytest.approx(mt.ged(probs[i], raters[i]))
        assert row["ged_dpersona"] == pytest.approx(ged1[i]) == pytest.approx(mt.ged(probs[i], raters[i], 1.0))
        assert row["dice_match"] == pytest.approx(dm[i])
        assert row["dice_soft"] == pytest.approx(mt.dice_soft(probs[i], raters[i]))
        assert row["hm_iou"] == pytest.approx(mt.hm_iou(probs[i], raters[i]))
        assert [row[f"dice_expert_{k}"] for k in range(4)] == pytest.approx(per[i])
        assert row["ged"] == pytest.approx(2 * row["d_sy"] - row["d_ss"] - row["d_yy"])
    # chunking, worker threads and crop windows change nothing
    small = mt._metric_table(probs, raters, 0.5, None, {"ged", "dice_match", "dice_soft"}, chunk_size=2, workers=2)
    assert small["ged"] == pytest.approx(frame["ged"].to_numpy())
    assert small["dice_soft"] == pytest.approx(frame["dice_soft"].to_numpy())


def _dpersona_style_ged(samples: np.ndarray, raters: np.ndarray) -> float:
    """D-Persona's formula written out per pair: IoU = |a & b| / (|a | b| + 1e-8), self-pairs kept."""
    def d(a, b):
        return 1.0 - np.logical_and(a, b).sum() / (np.logical_or(a, b).sum() + 1e-8)

    sy = np.mean([d(a, b) for a in samples for b in raters])
    ss = np.mean([d(a, b) for a in samples for b in samples])
    yy = np.mean([d(a, b) for a in raters for b in raters])
    return 2 * sy - ss - yy


def test_empty_pair_distance_one_reproduces_dpersona_within_1e6():
    probs, raters = _random_cases(b=5, m=8, n=4, size=20, seed=4)
    ours = mt.ged_batch(probs, raters, 1.0)
    for i in range(len(probs)):
        theirs = _dpersona_style_ged(probs[i] > 0.5, raters[i] > 0.5)
        assert abs(ours[i] - theirs) < 1e-6


def test_absent_raters_are_left_out():
    probs, raters = _random_cases(b=3, m=5, n=4, seed=5)
    present = np.array([[True, False, True, True], [True, True, True, True], [False, False, True, False]])
    frame = mt.evaluate_cases(probs, raters, present=present)
    for i in range(3):
        keep = present[i]
        assert frame["ged"][i] == pytest.approx(mt.ged(probs[i], raters[i][keep]))
        assert frame["dice_soft"][i] == pytest.approx(mt.dice_soft(probs[i], raters[i][keep]))
        assert frame["hm_iou"][i] == pytest.approx(mt.hm_iou(probs[i], raters[i][keep]))
        per = frame[[f"dice_expert_{k}" for k in range(4)]].to_numpy()[i]
        assert np.isnan(per[~keep]).all()
        assert per[keep] == pytest.approx(mt.dice_match(probs[i], raters[i][keep])[1])
    with pytest.raises(ValueError, match="at least one present rater"):
        mt.ged(probs[0], raters[0], present=np.zeros(4, dtype=bool))


def test_threshold_is_strict_and_bad_shapes_raise():
    half = np.full((1, 2, 2), 0.5, dtype=np.float32)  # exactly 0.5 is background (probs > 0.5)
    empty = np.zeros((1, 2, 2), dtype=np.uint8)
    assert mt.dice_match(half, empty)[0] == 1.0
    with pytest.raises(ValueError, match="shape"):
        mt.ged(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="do not match"):
        mt.ged(np.zeros((2, 4, 4)), np.zeros((2, 5, 5)))


def test_metric_benchmark_small_run_agrees_with_reference():
    from mrseg.bench.metrics import make_cases, metrics_benchmark

    result = metrics_benchmark(cases=6, samples=8, reference_cases=3, block=4, progress=False)
    assert {"cases", "samples", "seconds", "reference_seconds", "speedup", "max_abs_diff"} <= set(result)
    assert result["cases"] == 6 and result["samples"] == 8 and result["reference_cases_timed"] == 3
    assert result["max_abs_diff"] <= 1e-6
    assert result["seconds"] > 0 and result["reference_seconds"] > 0
    probs, masks = make_cases(3, 8, seed=1)
    assert probs.shape == (3, 8, 128, 128) and masks.shape == (3, 4, 128, 128)
    assert (masks.reshape(3, 4, -1).sum(-1) > 0).any() and ((probs > 0.5).reshape(3, 8, -1).sum(-1) > 0).any()
