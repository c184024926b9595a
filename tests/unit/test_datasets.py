import numpy as np

from components.datasets import FEATURE_COLUMNS, Degradation, degrade, two_source_digits


def test_two_sources_from_disjoint_halves():
    frame = two_source_digits()
    assert len(frame) == 1797
    assert list(frame.columns[:3]) == ["id", "source", "label"]
    assert list(frame.columns[3:]) == list(FEATURE_COLUMNS)
    assert frame["id"].is_unique
    index = frame["id"].str.split("-").str[1]
    scan, phone = set(index[frame["source"] == "scan"]), set(index[frame["source"] == "phone"])
    assert not scan & phone and len(scan | phone) == 1797
    pixels = frame[list(FEATURE_COLUMNS)].to_numpy()
    assert pixels.min() >= 0 and pixels.max() <= 1


def test_deterministic():
    assert two_source_digits(seed=3).equals(two_source_digits(seed=3))


def test_degradation_blurs_and_lowers_contrast():
    rng = np.random.default_rng(0)
    images = np.zeros((5, 8, 8))
    images[:, 2:6, 3:5] = 1.0
    out = degrade(images, Degradation(blur_sigma=1.0, contrast=0.5, noise_std=0.0, max_shift=0.0), rng)
    assert out.shape == images.shape
    assert out.max() < 0.7  # blur and contrast loss flatten the strokes
    assert (out[:, 0, 0] >= 0).all()
