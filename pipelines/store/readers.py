"""The user's data into one table, checked at the boundary: a CSV (text columns included) or Parquet file,
or a folder of images with one subfolder per class (`<class>/<image>`, or `<source>/<class>/<image>` when
params.yaml data.source_column is set).

Every reader refuses, before it reads, a file whose table would not fit params.yaml data.max_memory_mb,
and names the file, the line or the image of anything it cannot read.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from components.images import IMAGE_SUFFIXES, BadImage, class_numbers, decode
from pipelines.errors import DataError, UserError
from pipelines.store.artifacts import read_frame
from pipelines.store.params import DataParams

MB = 2**20


DELIMITERS = ",;\t|"


def read_dataset(path: Path, data: DataParams) -> pd.DataFrame:
    """The table at `path` (a .csv or .parquet file, or a folder of images), one row per example. A CSV
    file is read with params.yaml data.delimiter, data.decimal and data.na_values (more markers of a
    missing value than pandas' own: '', 'NA', 'N/A', 'null', 'NaN', ...); its header must name each column
    once and be followed by at least one row."""
    if path.is_dir():
        return read_image_folder(path, data)
    if not path.is_file():
        raise DataError(f"{path}: not found (params.yaml data.path)")
    check_memory(path, _table_bytes(path), data.max_memory_mb)
    if path.suffix != ".csv":
        return read_frame(path)
    delimiter = data.delimiter or ","
    header = _header(path, delimiter)
    try:
        frame = pd.read_csv(path, sep=delimiter, decimal=data.decimal, na_values=data.na_values or None)
    except UnicodeDecodeError as error:
        _name_the_line(path)
        raise DataError(f"{path}: not UTF-8 text ({error}); save the file as UTF-8") from None
    except Exception as error:  # pandas raises many types for a malformed file
        raise DataError(f"{path}: cannot be read as CSV: {error}") from error
    if frame.empty:
        raise DataError(
            f"{path}: no rows, only the header line ({len(header)} columns): nothing to learn from"
        )
    return frame


def sniff_delimiter(path: Path) -> str:
    """The field separator of a CSV file (one of , ; tab |), from its first lines; ',' when unclear."""
    import csv

    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        sample = handle.read(65_536)
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _header(path: Path, delimiter: str) -> list[str]:
    """The header line's column names; refuses a name given twice (pandas would rename the second 'a.1'),
    and names the separator when the file looks separated by another one."""
    import csv

    try:
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), [])
    except UnicodeDecodeError as error:
        _name_the_line(path)
        raise DataError(f"{path}: not UTF-8 text ({error}); save the file as UTF-8") from None
    if not header:
        raise DataError(f"{path}: empty file (no header line)")
    if len(header) == 1:
        found = sniff_delimiter(path)
        if found != delimiter:
            raise DataError(
                f"{path}: line 1 holds one column when split at {delimiter!r}, but the file looks separated "
                f"by {found!r}: set params.yaml data.delimiter: {found!r} (`mlstrategy init` detects it)"
            )
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen:
            raise DataError(
                f"{path}: line 1 names column {name!r} twice (columns {seen[name]} and {number}); rename one "
                "of them so that every column has its own name"
            )
        seen[name] = number
    return header


def check_memory(path: Path, estimate: float, budget_mb: float) -> None:
    """Refuse a table estimated at `estimate` bytes in memory when that is over `budget_mb`."""
    if estimate > budget_mb * MB:
        raise DataError(
            f"{path}: about {_mb(estimate / MB)} MB in memory, over params.yaml data.max_memory_mb "
            f"({_mb(budget_mb)} MB); raise the budget if the machine has the memory, or ingest the data "
            "in smaller files"
        )


def _mb(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _table_bytes(path: Path) -> float:
    """Parquet, from its metadata: rows x width for fixed-width columns (encodings shrink them on disk,
    not in memory), the uncompressed size of the others. CSV: the file's size (text numbers take about as
    many bytes as their float64 values)."""
    if path.suffix != ".parquet":
        return float(path.stat().st_size)
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(f"{path}: cannot be read as PARQUET: {error}") from error
    schema, total = meta.schema.to_arrow_schema(), 0.0
    for j, column in enumerate(schema):
        try:
            total += meta.num_rows * column.type.bit_width / 8
        except ValueError:  # variable width: strings, lists
            total += sum(
                meta.row_group(i).column(j).total_uncompressed_size for i in range(meta.num_row_groups)
            )
    return total


def _name_the_line(path: Path) -> None:
    """Text must be UTF-8: name the first line that is not (pandas only gives a byte offset)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}: line {number} is not UTF-8 text (byte {error.start + 1} of the line: "
                    f"{line[error.start : error.start + 1]!r}); save the file as UTF-8"
                ) from None


def read_image_folder(root: Path, data: DataParams) -> pd.DataFrame:
    """Images under `root` as rows: id (the path under root), [source,] label and the pixels in [0, 1],
    one column per pixel of data.image_shape: px_<r>_<c> gray for [h, w], px_<r>_<c>_<channel> RGB for
    [h, w, 3].

    Labels: the class folder's name as it is ('cat'); folders named by numbers (0..K-1) keep their
    number (`components.images.class_numbers`). Every image must
    decode and have data.image_shape (nothing is resized behind your back; `components.images.decode`);
    with data.on_bad_image: skip, the ones that do not are left out and named in a warning instead."""
    if data.image_shape is None:
        raise UserError(f"{root}: a folder of images needs params.yaml data.image_shape [height, width]")
    depth = 3 if data.source_column else 2
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    misplaced = [p for p in files if len(p.relative_to(root).parts) != depth]
    layout = "<source>/<class>/<image>" if data.source_column else "<class>/<image>"
    if not files or misplaced:
        raise DataError(
            f"{root}: expected images as {layout}"
            + (
                f"; found {[str(p.relative_to(root)) for p in misplaced[:5]]}"
                if misplaced
                else "; found none"
            )
            + (" (data.source_column is set: one folder per source first)" if data.source_column else "")
        )
    height, width = data.image_shape[:2]
    channels = data.image_shape[2] if len(data.image_shape) == 3 else 1
    if channels not in (1, 3):
        raise DataError(
            f"params.yaml data.image_shape: images have 1 (gray) or 3 (RGB) channels, got {channels}"
        )
    check_memory(root, len(files) * height * width * channels * 4, data.max_memory_mb)
    names = {p.parent.name for p in files}
    label_of = class_numbers(names) if all(name.isdecimal() for name in names) else {n: n for n in names}

    pixels = np.empty((len(files), height * width * channels), np.float32)
    corrupt, misshapen, unusable = [], [], []
    for i, file in enumerate(files):
        try:
            pixels[i] = decode(file, data.image_shape)
        except BadImage as bad:
            name = file.relative_to(root)
            if bad.size is None:
                corrupt.append(f"{name} ({bad.reason})")
            else:
                misshapen.append(f"{name} {bad.size[0]}x{bad.size[1]}")
            unusable.append(i)
    problems = [
        f"{len(found)} {what}: " + ", ".join(found[:10]) + (", ..." if len(found) > 10 else "")
        for what, found in (
            ("image(s) that do not decode", corrupt),
            (f"image(s) not {height}x{width} (params.yaml data.image_shape)", misshapen),
        )
        if found
    ]
    if problems and data.on_bad_image == "fail":
        raise DataError(f"{root}: " + "; ".join(problems) + " (data.on_bad_image: skip leaves them out)")
    if problems:
        logging.getLogger(__name__).warning("%s: skipped %s", root, "; ".join(problems))
        keep = np.setdiff1d(np.arange(len(files)), unusable)
        files, pixels = [files[i] for i in keep], pixels[keep]
    names = [f"px_{r}_{c}" for r in range(height) for c in range(width)]
    if channels == 3:
        names = [f"{name}_{channel}" for name in names for channel in range(3)]
    frame = pd.DataFrame(pixels, columns=names)
    frame.insert(0, data.label_column, [label_of[p.parent.name] for p in files])
    if data.source_column:
        frame.insert(0, data.source_column, [p.parent.parent.name for p in files])
    frame.insert(0, data.id_column, [p.relative_to(root).as_posix() for p in files])
    return frame
