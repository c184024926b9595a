"""Setting up train / train_dev / dev / test, as the course says.

- Ratios follow the data size: 60/20/20 for small data (up to ~10,000 examples), about 98/1/1 for big
  data (1,000,000 and more) with dev and test capped ("10,000 examples is enough"), and in between a
  rule that moves monotonically from one to the other.
- Dev and test come from the target sources only ("choose dev and test to reflect data you expect to get
  in the future"), so they share one distribution; train gets every other source plus the rest of the
  target data.
- train_dev is carved out of train and never trained on: same distribution as train, unseen like dev.
- Each example's split is a function of its id (a salted hash), not of its row position.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "train_dev", "dev", "test")


@dataclass(frozen=True)
class SplitPolicy:
    """Knobs of the split. Sizes are example counts; train_dev_fraction is a share of train; the salt
    seeds the id hash (changing it reshuffles every example)."""

    salt: str = "mlstrategy-v1"
    small_data_max: int = 10_000
    big_data_min: int = 1_000_000
    dev_test_cap: int = 10_000
    train_dev_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.small_data_max < self.big_data_min:
            raise ValueError("split: need 0 < small_data_max < big_data_min")
        if self.dev_test_cap <= 0:
            raise ValueError("split: dev_test_cap must be positive")
        if not 0 <= self.train_dev_fraction < 1:
            raise ValueError("split: train_dev_fraction must be in [0, 1)")


@dataclass(frozen=True)
class SplitPlan:
    """The rule that applied: the share of all examples for dev (and the same for test), and why."""

    n_examples: int
    dev_fraction: float
    rule: str

    @property
    def ratios(self) -> dict[str, float]:
        return {"train": 1 - 2 * self.dev_fraction, "dev": self.dev_fraction, "test": self.dev_fraction}


def split_plan(n_examples: int, policy: SplitPolicy | None = None) -> SplitPlan:
    """How much of `n_examples` goes to dev and to test.

    Between small and big data the dev share falls log-linearly in n from 20% to 1%, which keeps the dev
    size growing with n while its share shrinks; the absolute cap applies everywhere.
    """
    policy = policy or SplitPolicy()
    if n_examples <= 0:
        raise ValueError("split: there are no examples to split")
    small, big = policy.small_data_max, policy.big_data_min
    if n_examples <= small:
        fraction, rule = 0.2, f"small data (<= {small:,} examples): 60/20/20"
    elif n_examples >= big:
        fraction, rule = 0.01, f"big data (>= {big:,} examples): 98/1/1"
    else:
        position = (math.log(n_examples) - math.log(small)) / (math.log(big) - math.log(small))
        fraction = 0.2 * (0.01 / 0.2) ** position
        rule = f"medium data: dev share {fraction:.1%}, log-linear between 20% at {small:,} and 1% at {big:,}"
    if fraction * n_examples > policy.dev_test_cap:
        fraction = policy.dev_test_cap / n_examples
        rule += f"; dev and test capped at {policy.dev_test_cap:,} examples each"
    return SplitPlan(n_examples=n_examples, dev_fraction=fraction, rule=rule)


def unit_hash(ids: Iterable[str], salt: str) -> np.ndarray:
    """Map each id to a float in [0, 1) that depends on (salt, id) alone."""
    key = salt.encode()
    values = [
        int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=key).digest(), "big") for i in ids
    ]
    return np.asarray(values, dtype=np.float64) / 2.0**64


def assign_splits(
    ids: Sequence[str],
    sources: Sequence[str] | None = None,
    target_sources: Sequence[str] | None = None,
    policy: SplitPolicy | None = None,
) -> tuple[np.ndarray, SplitPlan]:
    """Assign every example to one of SPLITS.

    ids: (n,) unique example ids. sources: (n,) source of each example, or None for one source.
    target_sources: the sources dev and test must reflect (None or empty: every source).
    Returns the (n,) array of split names and the plan that set the sizes.
    """
    policy = policy or SplitPolicy()
    plan = split_plan(len(ids), policy)
    if sources is None or not target_sources:
        is_target = np.ones(len(ids), dtype=bool)
    else:
        sources = np.asarray(sources, dtype=object)
        if len(sources) != len(ids):
            raise ValueError(f"split: {len(sources)} sources for {len(ids)} ids")
        unknown = sorted(set(target_sources) - set(sources.tolist()))
        if unknown:
            present = sorted(set(sources.tolist()))
            raise ValueError(
                f"split: target source(s) {unknown} have no examples; sources present: {present}"
            )
        is_target = np.isin(sources, list(target_sources))
    # Share of the target examples that goes to dev (and as much to test); at most half each.
    share = min(plan.dev_fraction * len(ids) / int(is_target.sum()), 0.5)
    u = unit_hash(ids, policy.salt)
    v = unit_hash(ids, policy.salt + "/train_dev")
    split = np.full(len(ids), "train", dtype=object)
    split[is_target & (u < share)] = "dev"
    split[is_target & (u >= share) & (u < 2 * share)] = "test"
    split[(split == "train") & (v < policy.train_dev_fraction)] = "train_dev"
    return split, plan
