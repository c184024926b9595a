"""Error analysis: tags, the ceiling table on a hand-made case, and planted label flips found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.error_analysis import (
    confusion_pairs,
    image_tags,
    label_issues,
    low_confidence,
    out_of_fold_probabilities,
    tag_table,
)


def test_ceilings_on_a_hand_made_case():
    # 20 dev examples, 4 wrong (dev error 20%): 3 of the errors are blurry, 1 is from the phone source.
    wrong = np.zeros(20, bool)
    wrong[[0, 1, 2, 3]] = True
    tags = pd.DataFrame(
        {
            "blurry": np.isin(np.arange(20), [0, 1, 2, 10]),
            "dark": np.isin(np.arange(20), [11]),  # on no error: left out
            "source": ["phone"] + ["scan"] * 3 + ["phone"] * 16,
        }
    )
    table = tag_table(tags, wrong).set_index("tag")
    assert list(table.index) == ["blurry", "source=scan", "source=phone"]  # most promising first
    assert table.loc["blurry", "count"] == 3 and table.loc["blurry", "share"] == pytest.approx(0.75)
    assert table.loc["blurry", "ceiling"] == pytest.approx(0.05)  # 20% -> 5% if every blurry error is fixed
    assert table.loc["source=phone", "ceiling"] == pytest.approx(0.15)
    assert (table["dev_error"] == 0.2).all()


def test_confusion_pairs_and_low_confidence():
    pairs = confusion_pairs(np.array([3, 3, 1]), np.array([8, 3, 7]))
    assert list(pairs) == ["3->8", "", "1->7"]
    assert list(low_confidence(np.array([[0.4, 0.3, 0.3], [0.9, 0.05, 0.05]]))) == [True, False]


def test_image_tags_find_the_degraded_images():
    from scipy import ndimage
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(0)
    reference = load_digits().images / 16
    images = reference[:4].copy()
    images[0] = ndimage.uniform_filter(images[0], 3)  # blurred
    images[1] *= 0.1  # dark, and low contrast with it
    images[2] = 0.5 + 0.05 * (images[2] - 0.5)  # low contrast at normal brightness
    images[3] = np.clip(images[3] + rng.normal(0, 0.5, (8, 8)), 0, 1)  # noisy
    tags = image_tags(images, reference)
    assert tags.loc[0, "blurry"] and not tags.loc[3, "blurry"]
    assert tags.loc[1, "dark"] and not tags.loc[2, "dark"]
    assert tags.loc[2, "low_contrast"]
    assert tags.loc[3, "noisy"] and not tags.loc[0, "noisy"]
    with pytest.raises(ValueError, match=r"\(n, height, width\)"):
        image_tags(images.reshape(4, 64), reference)


def test_planted_label_flips_are_found_likeliest_first():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=len(y) // 20, replace=False)  # 5% of the labels
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, len(flipped))) % 10

    def fit_predict(x_fit, y_fit, x_held_out):
        model = LogisticRegression(max_iter=300).fit(x_fit / 16, y_fit)
        return model.predict_proba(x_held_out / 16)

    probabilities = out_of_fold_probabilities(fit_predict, x, noisy)
    found = label_issues(noisy, probabilities)
    hits = len(set(found) & set(flipped))
    assert len(set(found)) == len(found) and set(found) <= set(range(len(y)))
    assert hits / len(flipped) >= 0.8  # recall: most planted flips are found
    assert hits / len(found) >= 0.5  # precision: most of what is found was planted
    # Likeliest first: the less probability out-of-sample models give the given label, the earlier.
    given = probabilities[found, noisy[found]]
    assert (np.diff(given) >= 0).all()
    # The planted flips found rank above the clean examples flagged with them (their labels are less
    # likely): the first tenth of the queue is nearly all flips.
    head = found[: len(found) // 10]
    assert len(set(head) & set(flipped)) / len(head) >= 0.9
    # No label the out-of-sample models trust (half their probability or more) is flagged.
    assert given.max() < 0.5


def test_the_stage_refuses_an_image_shape_that_does_not_fit_the_features():
    from pipelines.errors import UserError
    from pipelines.stages.analyze import dev_tags
    from pipelines.store.params import Params

    params = Params.model_validate({"data": {"image_shape": [5, 5]}})
    dev = pd.DataFrame({"id": ["a", "b"], "source": ["phone"] * 2, "label": [0, 1]})
    x = np.zeros((2, 64), np.float32)
    with pytest.raises(UserError, match=r"data.image_shape \[5, 5\] does not hold the data's 64 features"):
        dev_tags(params, dev, (x, np.array([0, 1])), x, np.full((2, 2), 0.5), np.array(["0", "1"], object))


def test_text_tags_length_and_unknown_words():
    from components.error_analysis import text_measures, text_tags

    train = ["the cat sat on the mat", "a dog ran", "the bird sang a song today", "cats and dogs"]
    dev = ["the cat", "zyx qwv the", "the dog sat on the mat and the cat ran after a bird today"]
    measures = text_measures(dev, {"the", "cat"})
    assert measures["length"].tolist() == [2, 3, 14]
    assert measures["unknown_share"].tolist() == pytest.approx([0.0, 2 / 3, 10 / 14])
    tags = text_tags(dev, train, quantile=0.25)
    assert tags.to_dict("list") == {
        "short": [True, False, False],
        "long": [False, False, True],
        "unknown_words": [False, True, False],  # "after" is 1 unknown word in 14
    }
