"""The sweep's round scheduler (`pipelines.stages.sweep.run_round`) on a plain thread pool: order, the
bound on trials in flight, a freed slot refilled at once, every outcome seen once, errors surfacing."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest

from pipelines.stages.sweep import _Job, run_round


class Recorder:
    """A pool that records when each job is submitted, starts and ends, and the most in flight."""

    def __init__(self, workers: int, durations: dict[int, float]) -> None:
        self.pool = ThreadPoolExecutor(workers)
        self.durations = durations
        self.lock = threading.Lock()
        self.events: list[tuple[str, int]] = []
        self.in_flight = self.most_in_flight = 0

    def submit(self, job: _Job):
        number = job.values["n"]
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.events.append(("submit", number))
        return self.pool.submit(self._run, number)

    def _run(self, number: int) -> dict:
        time.sleep(self.durations.get(number, 0.01))
        if number < 0:
            raise RuntimeError(f"trial {number} failed")
        with self.lock:
            self.in_flight -= 1
            self.events.append(("end", number))
        return {"number": number}


def jobs(*numbers: int) -> list[_Job]:
    return [_Job(trial=None, values={"n": n}) for n in numbers]


def test_jobs_are_submitted_in_order_and_every_outcome_is_seen_once():
    pool, seen = Recorder(2, {}), []
    run_round(
        jobs(0, 1, 2, 3, 4, 5), pool.submit, 3, lambda outcome: seen.append(outcome["number"]), as_completed
    )
    assert [n for kind, n in pool.events if kind == "submit"] == [0, 1, 2, 3, 4, 5]
    assert sorted(seen) == [0, 1, 2, 3, 4, 5]


def test_no_more_than_slots_are_in_flight():
    pool = Recorder(4, {n: 0.05 for n in range(8)})
    run_round(jobs(*range(8)), pool.submit, 2, lambda outcome: None, as_completed)
    assert pool.most_in_flight == 2


def test_a_freed_slot_is_refilled_before_a_long_trial_ends():
    # Trial 0 is long; 1 and 2 are short: 2 must start while 0 still runs, not after it.
    pool = Recorder(2, {0: 0.5, 1: 0.01, 2: 0.01})
    run_round(jobs(0, 1, 2), pool.submit, 2, lambda outcome: None, as_completed)
    order = pool.events
    assert order.index(("submit", 2)) < order.index(("end", 0))


def test_a_failed_trial_stops_the_round_with_its_error():
    pool = Recorder(1, {})
    with pytest.raises(RuntimeError, match="trial -1 failed"):
        run_round(jobs(0, -1, 2), pool.submit, 1, lambda outcome: None, as_completed)
    assert ("submit", 2) not in pool.events
