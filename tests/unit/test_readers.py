"""The readers of the user's data and the contract file: what they read, and the one clear message for
what they cannot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.errors import UserError
from pipelines.store.contract import load_contract, write_contract
from pipelines.store.params import DataParams, Params
from pipelines.store.readers import read_dataset


def image_folder(root: Path, classes=("cat", "dog"), per_class: int = 3, shape=(4, 6)) -> Path:
    from PIL import Image

    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full(shape, 50 * k + i, np.uint8)
            Image.fromarray(pixels).convert("RGB").save(root / name / f"{i}.png")
    return root


def folder_params(**data) -> DataParams:
    return DataParams(**{"source_column": None, "target_sources": [], "image_shape": (4, 6), **data})


def test_an_image_folder_becomes_rows_of_gray_pixels_labelled_by_folder(tmp_path):
    frame = read_dataset(image_folder(tmp_path / "images"), folder_params())
    assert list(frame.columns[:2]) == ["id", "label"] and frame.shape == (6, 2 + 24)
    assert frame["id"].tolist()[:2] == ["cat/0.png", "cat/1.png"]
    assert frame["label"].tolist() == ["cat"] * 3 + ["dog"] * 3  # the class folders' names
    assert frame["px_3_5"].tolist()[3] == pytest.approx(50 / 255)


def test_numbered_class_folders_keep_their_numbers_and_sources_come_first(tmp_path):
    image_folder(tmp_path / "images/web", classes=("3", "7"))
    image_folder(tmp_path / "images/phone", classes=("3",))
    frame = read_dataset(tmp_path / "images", folder_params(source_column="source"))
    assert sorted(set(zip(frame["source"], frame["label"], strict=True))) == [
        ("phone", 3),
        ("web", 3),
        ("web", 7),
    ]


def test_bad_images_are_named_all_at_once(tmp_path):
    root = image_folder(tmp_path / "images")
    (root / "cat/1.png").write_bytes(b"not a png")
    from PIL import Image

    Image.new("L", (5, 5)).save(root / "dog/9.png")
    with pytest.raises(UserError) as raised:
        read_dataset(root, folder_params())
    message = str(raised.value)
    assert "1 image(s) that do not decode: cat/1.png (not an image format Pillow reads)" in message
    assert "1 image(s) not 4x6 (params.yaml data.image_shape): dog/9.png 5x5" in message


def test_bad_images_can_be_skipped_with_a_warning(tmp_path, caplog):
    root = image_folder(tmp_path / "images")
    (root / "cat/1.png").write_bytes(b"not a png")
    frame = read_dataset(root, folder_params(on_bad_image="skip"))
    assert frame["id"].tolist() == ["cat/0.png", "cat/2.png", "dog/0.png", "dog/1.png", "dog/2.png"]
    assert "skipped 1 image(s) that do not decode: cat/1.png" in caplog.text


def test_the_one_decoder_names_the_file_and_what_is_wrong(tmp_path):
    from components.images import BadImage, class_numbers, decode

    root = image_folder(tmp_path / "images", shape=(4, 6))
    assert decode(root / "dog/2.png", (4, 6)).tolist() == pytest.approx([52 / 255] * 24)
    assert decode(root / "dog/2.png", (4, 6, 3)).shape == (72,)
    with pytest.raises(BadImage, match=r"dog/2\.png: 4x6 pixels, expected 6x4 \(height x width\)") as raised:
        decode(root / "dog/2.png", (6, 4))
    assert raised.value.size == (4, 6)
    (root / "cat/1.png").write_bytes(b"not a png")
    with pytest.raises(BadImage, match=r"cat/1\.png: not an image format Pillow reads") as raised:
        decode(root / "cat/1.png", (4, 6))
    assert raised.value.size is None
    assert class_numbers(["dog", "cat", "dog"]) == {"cat": 0, "dog": 1}
    assert class_numbers(["10", "2"]) == {"2": 2, "10": 10}


def test_reading_images_does_not_import_keras():
    import subprocess
    import sys

    code = "import sys, pipelines.store.readers; print('keras' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]


def test_colour_images_keep_their_three_channels(tmp_path):
    frame = read_dataset(image_folder(tmp_path / "images"), folder_params(image_shape=(4, 6, 3)))
    assert frame.shape == (6, 2 + 4 * 6 * 3) and list(frame.columns[2:5]) == [
        "px_0_0_0",
        "px_0_0_1",
        "px_0_0_2",
    ]


def test_an_image_folder_needs_the_layout_and_a_shape(tmp_path):
    root = image_folder(tmp_path / "images")
    (root / "loose.png").write_bytes((root / "cat/0.png").read_bytes())
    with pytest.raises(UserError, match=r"expected images as <class>/<image>; found \['loose.png'\]"):
        read_dataset(root, folder_params())
    with pytest.raises(UserError, match=r"needs params\.yaml data\.image_shape"):
        read_dataset(root, DataParams(source_column=None, target_sources=[]))


def test_a_csv_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes("id,label,text\na,0,fine\nb,1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"reviews.csv: line 3 is not UTF-8 text \(byte 8 of the line"):
        read_dataset(path, DataParams())


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_over_the_memory_budget_is_refused_before_it_is_read(tmp_path, suffix):
    frame = pd.DataFrame(np.zeros((2000, 20)), columns=[f"f{i}" for i in range(20)])
    path = tmp_path / f"big{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    with pytest.raises(UserError, match=r"MB in memory, over params.yaml data.max_memory_mb \(0.01 MB\)"):
        read_dataset(path, DataParams(max_memory_mb=0.01))
    assert len(read_dataset(path, DataParams())) == 2000


def test_contract_proposed_written_and_read_back(tmp_path):
    source = tmp_path / "snapshot.parquet"
    pd.DataFrame({"id": ["a", "b"], "label": [0, 1], "x": [0.25, 0.5]}).to_parquet(source)
    output = tmp_path / "contract.yaml"
    assert write_contract(Params(), source, output) == 3
    text = output.read_text()
    assert text.startswith("# The data contract") and "  x: {type: float, min: 0.25, max: 0.5}\n" in text
    rules, extra = load_contract(output)
    assert not extra and rules["id"].unique and rules["label"].values == (0, 1)
    with pytest.raises(UserError, match=r"contract\.yaml: already exists; pass --force"):
        write_contract(Params(), source, output)
    assert output.read_text() == text


def test_a_contract_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(["id", "label"]))
    with pytest.raises(UserError, match=r"contract\.yaml: expected a mapping with columns and extra_columns"):
        load_contract(path)
    path.write_text("columns: {a: [unclosed\n")
    with pytest.raises(UserError, match=r"contract\.yaml: "):
        load_contract(path)
    assert load_contract(tmp_path / "absent.yaml") == ({}, True)
