import numpy as np
import pytest

from components.train_dev import SPLITS, SplitPolicy, assign_splits, split_plan, unit_hash


def test_small_data_is_60_20_20():
    plan = split_plan(1_797)
    assert plan.ratios == pytest.approx({"train": 0.6, "dev": 0.2, "test": 0.2})
    assert "60/20/20" in plan.rule


def test_big_data_is_98_1_1_capped():
    plan = split_plan(1_000_000)
    assert plan.dev_fraction == pytest.approx(0.01)
    assert split_plan(5_000_000).dev_fraction * 5_000_000 == pytest.approx(10_000)


def test_medium_data_is_monotone():
    sizes = [10_000, 30_000, 100_000, 300_000, 999_999, 1_000_000]
    fractions = [split_plan(n).dev_fraction for n in sizes]
    dev_sizes = [f * n for f, n in zip(fractions, sizes, strict=True)]
    assert fractions == sorted(fractions, reverse=True)
    assert dev_sizes == sorted(dev_sizes)


def test_hash_depends_on_id_and_salt_only():
    ids = [f"x-{i}" for i in range(100)]
    assert np.array_equal(unit_hash(ids, "s"), unit_hash(ids, "s"))
    assert np.array_equal(unit_hash(ids[50:], "s"), unit_hash(ids, "s")[50:])
    assert not np.array_equal(unit_hash(ids, "s"), unit_hash(ids, "t"))
    assert ((unit_hash(ids, "s") >= 0) & (unit_hash(ids, "s") < 1)).all()


def test_source_aware_placement():
    ids = np.array([f"{s}-{i}" for s in ("web", "app") for i in range(2000)])
    sources = np.array([i.split("-")[0] for i in ids])
    split, _plan = assign_splits(ids, sources, ["app"], SplitPolicy(train_dev_fraction=0.25))
    assert set(sources[np.isin(split, ["dev", "test"])]) == {"app"}
    assert (split[sources == "web"] != "dev").all()
    assert set(split) == set(SPLITS)
    n = len(ids)
    assert abs((split == "dev").sum() - 0.2 * n) < 0.05 * n
    assert abs((split == "test").sum() - 0.2 * n) < 0.05 * n
    in_train = np.isin(split, ["train", "train_dev"]).sum()
    assert abs((split == "train_dev").sum() - 0.25 * in_train) < 0.05 * in_train


def test_stable_under_reordering():
    ids = np.array([f"id-{i}" for i in range(500)])
    first, _ = assign_splits(ids)
    order = np.random.default_rng(0).permutation(len(ids))
    second, _ = assign_splits(ids[order])
    assert np.array_equal(first[order], second)


def test_unknown_target_source_is_named():
    with pytest.raises(ValueError, match=r"\['phone'\].*sources present: \['scan'\]"):
        assign_splits(["a", "b"], ["scan", "scan"], ["phone"])


def test_policy_is_validated():
    with pytest.raises(ValueError, match="train_dev_fraction"):
        SplitPolicy(train_dev_fraction=1.5)
