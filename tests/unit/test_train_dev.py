import numpy as np
import pytest

from components.train_dev import (
    DEV,
    SPLITS,
    TEST,
    TRAIN,
    TRAIN_DEV,
    SplitPolicy,
    assign_splits,
    find_leaks,
    missing_classes,
    moved_since_last,
    per_class,
    row_hashes,
    split_plan,
    unit_hash,
)


def two_sources(n_web: int, n_app: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array(
        [f"web-{i}" for i in range(start, start + n_web)] + [f"app-{i}" for i in range(start, start + n_app)],
        dtype=object,
    )
    return ids, np.array([i.split("-")[0] for i in ids], dtype=object)


# -- the size rule -------------------------------------------------------------------------------------


def test_small_data_is_60_20_20():
    plan = split_plan(1_797)
    assert plan.ratios == pytest.approx({"train": 0.6, "dev": 0.2, "test": 0.2}, abs=1e-3)
    assert "60/20/20" in plan.rule


def test_big_data_is_98_1_1_capped():
    plan = split_plan(1_000_000)
    assert (plan.n_dev, plan.n_test) == (10_000, 10_000)
    assert "98/1/1" in plan.rule
    assert split_plan(5_000_000).n_dev == 10_000
    assert split_plan(5_000_000, SplitPolicy(dev_test_cap=2_500)).n_dev == 2_500


def test_medium_data_is_monotone():
    sizes = [10_000, 10_001, 30_000, 100_000, 300_000, 999_999, 1_000_000]
    plans = [split_plan(n) for n in sizes]
    shares = [p.n_dev / p.n_examples for p in plans]
    assert shares == sorted(shares, reverse=True)
    assert [p.n_dev for p in plans] == sorted(p.n_dev for p in plans)
    assert "log-linear" in plans[3].rule


def test_explicit_ratios_sizes_and_no_test_set():
    assert split_plan(1_000, SplitPolicy(ratios={"train": 0.8, "dev": 0.1, "test": 0.1})).n_dev == 100
    plan = split_plan(1_000, SplitPolicy(dev_size=50, test_size=70))
    assert (plan.n_dev, plan.n_test) == (50, 70)
    plan = split_plan(1_000, SplitPolicy(test_set=False))
    assert (plan.n_dev, plan.n_test) == (200, 0)
    assert "no unbiased estimate" in plan.rule
    assert split_plan(1_000, SplitPolicy(ratios={"train": 0.7, "dev": 0.3})).n_test == 0


def test_train_keeps_its_share_of_the_target_data():
    # 1,000 examples, 300 of the target source: the rule's 200 + 200 would leave train none of them.
    plan = split_plan(1_000, SplitPolicy(min_target_in_train=0.5), n_target=300)
    assert plan.n_dev + plan.n_test <= 150
    assert "min_target_in_train" in plan.rule


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            dict(ratios={"train": 0.6, "dev": 0.2, "test": 0.1}),
            r"ratios must sum to 1, got train 0.6 \+ dev 0.2 \+ test 0.1 = 0.9",
        ),
        (
            dict(ratios={"train": 0.5, "dev": 0.5, "valid": 0.0}),
            "ratios takes train, dev and optionally test",
        ),
        (dict(train_dev_fraction=1.5), "train_dev_fraction"),
        (dict(dev_size=0), "dev_size must be a positive number"),
    ],
)
def test_policy_is_validated(policy, message):
    with pytest.raises(ValueError, match=message):
        SplitPolicy(**policy)


def test_dev_or_test_larger_than_the_data_is_named():
    with pytest.raises(ValueError, match=r"need 1,500 examples but there are only 1,000 examples"):
        split_plan(1_000, SplitPolicy(dev_size=1_000, test_size=500))
    with pytest.raises(ValueError, match=r"only 100 examples of the target sources"):
        split_plan(1_000, SplitPolicy(dev_size=80, test_size=80), n_target=100)


# -- placement -----------------------------------------------------------------------------------------


def test_hash_depends_on_id_and_salt_only():
    ids = [f"x-{i}" for i in range(100)]
    assert np.array_equal(unit_hash(ids, "s"), unit_hash(ids, "s"))
    assert np.array_equal(unit_hash(ids[50:], "s"), unit_hash(ids, "s")[50:])
    assert not np.array_equal(unit_hash(ids, "s"), unit_hash(ids, "t"))
    assert ((unit_hash(ids, "s") >= 0) & (unit_hash(ids, "s") < 1)).all()
    # Pinned: the assignment of an id must not change with the platform or a library upgrade.
    assert unit_hash(["scan-0"], "mlstrategy-v1")[0] == pytest.approx(0.5736, abs=1e-4)


def test_source_aware_placement():
    ids, sources = two_sources(2_000, 2_000)
    codes = assign_splits(ids, sources, ["app"], SplitPolicy(train_dev_fraction=0.25)).codes
    assert set(sources[np.isin(codes, [DEV, TEST])]) == {"app"}
    assert set(codes) == {TRAIN, TRAIN_DEV, DEV, TEST}
    n = len(ids)
    assert abs((codes == DEV).sum() - 0.2 * n) < 0.03 * n
    assert abs((codes == TEST).sum() - 0.2 * n) < 0.03 * n
    # Train keeps the rest of the target data, and train_dev is a slice of train with its mix of sources.
    assert (sources[codes == TRAIN] == "app").any()
    in_train = np.isin(codes, [TRAIN, TRAIN_DEV])
    assert abs((codes == TRAIN_DEV).sum() - 0.25 * in_train.sum()) < 0.03 * in_train.sum()
    app_share = lambda code: (sources[codes == code] == "app").mean()  # noqa: E731
    assert abs(app_share(TRAIN) - app_share(TRAIN_DEV)) < 0.05


def test_without_sources_train_dev_is_a_slice_of_train():
    ids = np.array([f"id-{i}" for i in range(3_000)], dtype=object)
    codes = assign_splits(ids).codes
    assert abs((codes == TRAIN_DEV).sum() - 0.2 * 0.6 * 3_000) < 60


def test_stable_under_reordering():
    ids = np.array([f"id-{i}" for i in range(500)], dtype=object)
    first = assign_splits(ids).codes
    order = np.random.default_rng(0).permutation(len(ids))
    assert np.array_equal(first[order], assign_splits(ids[order]).codes)


@pytest.mark.parametrize(
    ("n_web", "n_app", "new_web", "new_app"),
    [(500, 2_500, 300, 0), (1_000, 9_000, 100, 900)],  # small data, new web only; into medium data
)
def test_appending_new_data_moves_no_old_example(n_web, n_app, new_web, new_app):
    ids, sources = two_sources(n_web, n_app)
    first = assign_splits(ids, sources, ["app"]).codes
    more_ids, more_sources = two_sources(new_web, new_app, start=10**6)
    all_ids, all_sources = np.r_[ids, more_ids], np.r_[sources, more_sources]
    previous = np.r_[first, np.full(len(more_ids), -1)]
    second = assign_splits(all_ids, all_sources, ["app"], previous=previous)
    assert moved_since_last(second.codes, previous) == 0
    assert second.kept == len(ids)
    assert set(all_sources[np.isin(second.codes, [DEV, TEST])]) == {"app"}
    # New target examples fill what dev still lacks (none came in the first case: dev cannot grow).
    n_dev = (second.codes == DEV).sum()
    assert (first == DEV).sum() <= n_dev <= second.plan.n_dev * 1.1
    # Without the previous assignment the dev share of app changes and examples move: why it is recorded.
    fresh = assign_splits(all_ids, all_sources, ["app"]).codes
    assert moved_since_last(fresh, previous) > 0


def test_unknown_target_source_is_named():
    with pytest.raises(ValueError, match=r"\['phone'\].*sources present: \['scan'\]"):
        assign_splits(["a", "b"], ["scan", "scan"], ["phone"])


def test_duplicate_ids_are_listed():
    ids = [f"id-{i}" for i in range(100)] + ["id-7", "id-3", "id-7"]
    with pytest.raises(ValueError, match=r"ids must be unique; repeated: \['id-7', 'id-3'\]"):
        assign_splits(ids)


# -- leaks and classes ---------------------------------------------------------------------------------


def test_leaks_are_the_later_copies():
    x = np.array([[0, 1], [0, 1], [2, 2], [3, 3], [3, 3], [5, 5], [5, 5]], dtype=float)
    codes = np.array([TRAIN, DEV, DEV, TEST, TRAIN_DEV, DEV, DEV], dtype=np.uint8)
    leak = find_leaks(row_hashes(x), codes)
    # dev copy of a train row; test copy of a train_dev row; two equal dev rows are no leak.
    assert leak.tolist() == [False, True, False, True, False, False, False]


def test_per_class_counts_and_missing_classes():
    labels = np.array([0, 1, 2, 0, 1, 0])
    codes = np.array([TRAIN, TRAIN, TRAIN, DEV, DEV, TEST], dtype=np.uint8)
    counts = per_class(labels, codes)
    assert counts["dev"] == {0: 1, 1: 1, 2: 0}
    assert set(counts) == set(SPLITS)
    assert missing_classes(counts) == {"dev": [2], "test": [1, 2]}
