from components import report
from components.diagnosis import KNOBS, Errors, diagnose


def test_report_renders_the_numbers():
    found = diagnose(Errors(train=0.0, train_dev=0.06, dev=0.23, test=0.25), 0.02).to_dict()
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
                "satisficing": {"latency_p95_ms": {"value": 0.9, "bound": 50.0, "met": True}},
            },
            "split": {
                "sizes": sizes,
                "sizes_by_source": {k: {"phone": v} for k, v in sizes.items()},
                "policy": "small data",
                "target_sources": ["phone"],
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
