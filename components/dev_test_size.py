"""Size of the dev and test sets: is the test set "big enough to give high confidence in the overall
performance of your system", and can the dev set tell two models apart?

All rates are error rates (fractions); for accuracy the numbers are the same, for macro-F1 they are the
binomial approximation.

- Confidence interval: the Wilson score interval of an error rate e measured on n examples; its
  half-width is z * sqrt(e(1-e)/n + z^2/(4n^2)) / (1 + z^2/n), z = the normal quantile at 1 - alpha/2.
- Two models on one dev set: McNemar's paired test. Its sample size (Connor 1987) to detect an error
  difference d with discordant proportion psi is n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2, with
  z_a at 1 - alpha/2 and z_b at the power. psi is taken as 2e(1-e), the share of examples two models with
  error e disagree on when their errors are independent: a conservative choice, since real models share
  most errors and disagree on fewer examples, which makes a difference easier to detect.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def _z(p: float) -> float:
    return NormalDist().inv_cdf(p)


def _check(error: float, n: float | None = None) -> None:
    if not 0 < error < 1:
        raise ValueError(f"error must be in (0, 1), got {error}")
    if n is not None and n < 1:
        raise ValueError(f"need at least one example, got {n}")


def ci_halfwidth(error: float, n: int, alpha: float = 0.05) -> float:
    """Half-width of the (1 - alpha) Wilson interval of an error rate `error` measured on `n` examples."""
    _check(error, n)
    z = _z(1 - alpha / 2)
    return z * math.sqrt(error * (1 - error) / n + z * z / (4 * n * n)) / (1 + z * z / n)


def discordance(error: float) -> float:
    """psi: share of examples on which two models of error `error` disagree, errors independent."""
    return 2 * error * (1 - error)


def paired_sample_size(difference: float, error: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Dev examples McNemar's test needs to detect an error difference `difference` at `error`."""
    _check(error)
    psi = discordance(error)
    if not 0 < difference < math.sqrt(psi):
        raise ValueError(
            f"difference must be in (0, {math.sqrt(psi):.3f}) at error {error}, got {difference}"
        )
    za, zb = _z(1 - alpha / 2), _z(power)
    return math.ceil((za * math.sqrt(psi) + zb * math.sqrt(psi - difference**2)) ** 2 / difference**2)


def min_detectable_difference(n: int, error: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest error difference between two models that `n` dev examples detect (McNemar, at
    `alpha` and `power`): the d solving n = paired_sample_size(d, error), found by bisection."""
    _check(error, n)
    psi = discordance(error)
    za, zb = _z(1 - alpha / 2), _z(power)

    def excess(d: float) -> float:  # falls as d grows; zero at the answer
        return za * math.sqrt(psi) + zb * math.sqrt(max(psi - d * d, 0.0)) - d * math.sqrt(n)

    low, high = 0.0, math.sqrt(psi)
    if excess(high) > 0:  # too few examples to detect even the largest difference
        return high
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if excess(middle) > 0 else (low, middle)
    return high
