from components import report
from components.diagnosis import KNOBS, Errors, diagnose


def test_report_renders_the_numbers():
    found = diagnose(Errors(train=0.0, train_dev=0.06, dev=0.23, test=0.25), 0.02).to_dict()
    found["human_level"] = {"levels": {"phone": {"typical_human": 0.03, "expert": 0.02}}}
    history = {"loss": [1.0, 0.5], "accuracy": [0.6, 0.9], "val_loss": [1.1, 0.9], "val_accuracy": [0.5, 0.7]}
    figures = {
        "error_ladder": report.png_bytes(
            report.error_ladder_figure(0.02, found["errors"], found["principal"])
        ),
        "learning_curves": report.png_bytes(report.learning_curves_figure(history)),
        "confusion": report.png_bytes(report.confusion_figure([[5, 1], [2, 7]], [0, 1])),
    }
    assert all(png.startswith(b"\x89PNG") for png in figures.values())
    sizes = {"train": 800, "train_dev": 200, "dev": 380, "test": 356}
    html = report.render_strategy_report(
        {
            "diagnosis": found,
            "evaluation": {
                "optimizing": {"name": "accuracy", "dev": 0.77},
                "metrics": {"accuracy": {"train": 1.0, "dev": 0.77}},
                "intervals": {"accuracy": {"train": [1.0, 1.0], "dev": [0.726, 0.811]}},
                "satisficing": {"latency_p95_ms": {"value": 0.9, "bound": 50.0, "met": True}},
                "measures": {"latency_p95_ms": 0.9, "n_parameters": 10_250.0},
            },
            "split": {
                "sizes": sizes,
                "ratios": {k: v / 1736 for k, v in sizes.items()},
                "sizes_by_source": {k: {"phone": v} for k, v in sizes.items()},
                "policy": "small data",
                "target_sources": ["phone"],
                "per_class": {k: {"0": v // 2, "1": v - v // 2} for k, v in sizes.items()},
                "moved_since_last": 0,
                "kept_from_last": 1736,
                "dev_test_same_distribution": {"domain_auc": 0.51, "label_p_value": 0.7, "same": True},
                "train_vs_dev_domain_auc": 0.903,
                "train_vs_dev": {"same": False},
                "expected_error": 0.5,
                "dev_ci_halfwidth": 0.05,
                "test_ci_halfwidth": 0.052,
                "min_detectable_difference": 0.105,
                "leaks": {"count": 2, "ids": ["phone-7", "phone-9"], "action": "drop"},
                "warnings": [
                    "2 examples of train_dev/dev/test duplicate an earlier split's features; dropped"
                ],
            },
            "improve": {
                "iterations": [
                    {
                        "gap": "variance",
                        "action": "add regularization (L2, dropout)",
                        "params": {"l2": 0.02, "dropout": 0.3},
                        "gap_before": 0.06,
                        "gap_after": 0.03,
                        "errors_after": {"train": 0.01, "train_dev": 0.04, "dev": 0.15},
                        "dev_metric_after": 0.85,
                        "kept": True,
                    }
                ],
                "stopped_because": "budget spent (1 iterations)",
                "requests": {"data_mismatch": "collect or synthesize training data like the dev/test data"},
                "baseline": {"dev_metric": 0.77, "errors": {"train": 0.0, "train_dev": 0.06, "dev": 0.23}},
                "final_dev_metric": 0.85,
                "improved": True,
                "final": {"errors": {"test": 0.16}},
            },
            "sources": ["phone"],
            "validation": {"success": True, "rows": 1797, "evaluated": 135},
            "tolerance": 0.02,
            "knobs": KNOBS,
            "early_stopping": False,
            "train_params": {"epochs": 2},
            "notes": ["a note"],
            "figures": figures,
        }
    )
    assert "Principal problem: <b>data mismatch</b>" in html
    assert "23.00%" in html and "0.7700" in html and "data:image/png;base64," in html
    assert "a note" in html
    assert "0.903" in html and "expect a data-mismatch gap" in html and "same distribution" in html
    assert (
        "drop: phone-7, phone-9" in html
        and "[0.726, 0.811]" in html
        and "typical human 3.0%" in html
        and "&plusmn;5.0%" in html
    )
    assert "10,250" in html and "not bounded" in html
    assert "variance: add regularization (L2, dropout)" in html and "l2=0.02 dropout=0.3" in html
    assert "6.0% &rarr; 3.0%" in html and "data mismatch: collect or synthesize" in html


def test_class_names_that_read_like_missing_values_or_numbers_stay_names(tmp_path):
    from pipelines.stages.report import read_confusion

    path = tmp_path / "confusion_dev.csv"
    path.write_text("actual,predicted\nNA,None\n01,NA\nNone,01\n")
    found = read_confusion(path)
    assert found["actual"].tolist() == ["NA", "01", "None"] and found["predicted"].tolist() == [
        "None",
        "NA",
        "01",
    ]


def test_the_sweep_figure_shows_the_anytime_curve_first():
    trials = [
        {"learning_rate": 0.01, "units": 32, "dev_metric": 0.7, "state": "screened"},
        {"learning_rate": 0.001, "units": 64, "dev_metric": 0.9, "state": "complete"},
    ]
    figure = report.sweep_figure(trials, ["learning_rate", "units"], "accuracy", [[2, 0.7], [22, 0.9]])
    anytime, *rest = figure.axes
    assert len(rest) == 2 and anytime.get_title() == "Anytime curve"
    assert list(anytime.lines[1].get_xdata()) == [2, 22] and list(anytime.lines[1].get_ydata()) == [0.7, 0.9]
    assert len(report.sweep_figure(trials, ["learning_rate", "units"], "accuracy").axes) == 2
