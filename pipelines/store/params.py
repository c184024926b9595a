"""params.yaml, validated at the boundary.

The knobs of each component are its own dataclass (`TrainConfig`, `SplitPolicy`, `Degradation`); this
module only composes them and adds the pipeline-level settings. An unknown key, a wrong type or an
impossible value stops the stage with one message naming the key, before any work is done.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from components.columns import KINDS, Kind
from components.config import DEFAULT_FAMILY, FAMILY_KINDS, TrainConfig
from components.datasets import Degradation
from components.diagnosis import check_fraction
from components.evaluation import (
    METRICS,
    OPTIMIZING_METRICS,
    SATISFICING_MEASURES,
    TRIAL_MEASURES,
    check_metric,
)
from components.human_level import bayes_proxy
from components.search_space import DEFAULT_SPACE, SearchSpace, configure, first_rung
from components.train_dev import SplitPolicy
from pipelines.errors import UserError

PARAMS_FILE = Path("params.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A class as the label column holds it: its own type is kept (True stays a bool, "3" a string).
Label = StrictBool | StrictInt | StrictFloat | StrictStr
PLACEHOLDER = "placeholder"  # diagnose.human_level's level when nobody measured it (`mlstrategy init`)


class DataParams(_Section):
    path: str | None = None
    delimiter: str | None = Field(None, min_length=1, max_length=1)  # a CSV's field separator (None: ',')
    decimal: Literal[".", ","] = "."  # a CSV's decimal mark ('1,5' in files separated by ';')
    na_values: list[str] = Field(default_factory=list)  # more markers of a missing value ('?', 'N/A')
    id_column: str = "id"
    make_ids: bool = False  # the file has no id column: ingest makes id_column from each row's values
    label_column: str = "label"
    source_column: str | None = "source"
    target_sources: list[str] = Field(default_factory=lambda: ["phone"])
    labels: list[Label] | None = None
    # A table's feature columns and their kinds; None: every column but the named ones is a number.
    features: dict[str, Kind] | None = None
    date_formats: dict[str, str] = Field(default_factory=dict)
    new_categories: Literal["warn", "fail"] = "warn"
    weight_column: str | None = None
    annotator_columns: list[str] = Field(default_factory=list)
    tag_columns: list[str] = Field(default_factory=list)
    image_shape: tuple[int, int] | tuple[int, int, int] | None = None
    text_column: str | None = None
    on_bad_image: Literal["fail", "skip"] = "fail"
    min_rows_per_class: int = Field(5, ge=1)
    feature_range: tuple[float, float] = (0.0, 1.0)
    max_memory_mb: float = Field(4096, gt=0)

    @field_validator("path")
    @classmethod
    def _inside_project(cls, value: str | None) -> str | None:
        if value is None:
            return value
        path = Path(inside_project(value))
        if path.suffix not in (".csv", ".parquet", ""):
            raise ValueError(f"'{value}' must be a .csv or .parquet file, or a folder of images")
        return value

    @field_validator("labels")
    @classmethod
    def _classes(cls, value: list | None) -> list | None:
        if value is None:
            return value
        if len(value) < 2 or len({repr(v) for v in value}) != len(value):
            raise ValueError(f"labels must list at least two distinct classes, got {value}")
        kinds = {
            "bool" if isinstance(v, bool) else "number" if isinstance(v, int | float) else "str"
            for v in value
        }
        if len(kinds) > 1:
            raise ValueError(
                f"labels mixes types ({', '.join(sorted(kinds))}): {value}; write them as the label column "
                "holds them (quote numbers that are text: '3'; yes and no unquoted are YAML booleans)"
            )
        return value

    @field_validator("features")
    @classmethod
    def _kinds(cls, value: dict | None) -> dict | None:
        if value is not None and not any(kind != "ignore" for kind in value.values()):
            raise ValueError(f"no feature: every column is ignore ({sorted(value)}); kinds: {list(KINDS)}")
        return value

    @field_validator("feature_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"feature_range must be [low, high] with low < high, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _sources(self) -> DataParams:
        if self.target_sources and not self.source_column:
            raise ValueError("target_sources needs a source_column (or set target_sources: [])")
        return self

    @model_validator(mode="after")
    def _table(self) -> DataParams:
        if self.features is None:
            if self.date_formats:
                raise ValueError("date_formats: only for data.features of kind date")
            return self
        if self.text_column or self.image_shape:
            raise ValueError(
                "features describes a table; text_column (text) and image_shape (images) describe other "
                "data: set them to null, or features to null"
            )
        named = [c for c in (self.id_column, self.label_column, self.source_column, self.weight_column) if c]
        clash = sorted(set(self.features) & {*named, *self.annotator_columns, *self.tag_columns})
        if clash:
            raise ValueError(f"features: {clash} are named elsewhere in data (id, label, source, ...)")
        dates = {c for c, kind in self.features.items() if kind == "date"}
        if set(self.date_formats) - dates:
            raise ValueError(
                f"date_formats: {sorted(set(self.date_formats) - dates)} are not date features (dates: "
                f"{sorted(dates)}); a date written as text needs its format, e.g. {{when: '%Y-%m-%d'}}"
            )
        return self

    @property
    def kinds(self) -> dict[str, str]:
        """The table's feature columns ({column: kind}, ignored ones left out); empty when features is
        null."""
        return {c: k for c, k in (self.features or {}).items() if k != "ignore"}


class IngestParams(_Section):
    seed: int = 0
    phone: Degradation = Degradation()


class EvaluateParams(_Section):
    optimizing_metric: Literal[tuple(OPTIMIZING_METRICS)] = "accuracy"  # type: ignore[valid-type]
    latency_calls: int = Field(200, ge=10)
    serving_batch_size: int = Field(32, ge=1)
    satisficing: dict[str, float] = Field(
        default_factory=lambda: {"latency_p95_ms": 50.0, "model_size_mb": 5.0}
    )

    @field_validator("satisficing")
    @classmethod
    def _known_positive(cls, bounds: dict[str, float]) -> dict[str, float]:
        for name, bound in bounds.items():
            if name not in SATISFICING_MEASURES:
                raise ValueError(f"unknown satisficing measure '{name}'; known: {list(SATISFICING_MEASURES)}")
            if bound <= 0:
                raise ValueError(f"the bound on {name} must be positive, got {bound}")
        return bounds

    @property
    def higher_is_better(self) -> bool:
        """The optimizing metric's direction."""
        return METRICS[self.optimizing_metric].higher_is_better

    @property
    def trial_bounds(self) -> dict[str, float]:
        """The satisficing bounds a candidate (a sweep or recipe trial, a scheduled run's challenger) is
        held to: those of `TRIAL_MEASURES` (latency at the serving batch size is checked on the final
        model only)."""
        return {name: bound for name, bound in self.satisficing.items() if name in TRIAL_MEASURES}


class DiagnoseParams(_Section):
    human_level: dict[str, dict[str, float]] = Field(default_factory=lambda: {"all": {"typical_human": 0.02}})
    tolerance: float = 0.02
    alpha: float = Field(0.05, gt=0, lt=0.5)

    @field_validator("human_level")
    @classmethod
    def _levels(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        if not value:
            raise ValueError("needs at least one source (or all) with one level, e.g. {all: {expert: 0.01}}")
        for source, levels in value.items():
            for level, error in levels.items():
                check_fraction(f"human_level.{source}.{level}", error)
            bayes_proxy(levels)
        return value

    @property
    def placeholder(self) -> bool:
        """Whether the human-level error is `mlstrategy init`'s placeholder: nobody measured it, so
        avoidable bias is read against 0."""
        return any(PLACEHOLDER in levels for levels in self.human_level.values())

    @field_validator("tolerance")
    @classmethod
    def _is_fraction(cls, value: float, info: ValidationInfo) -> float:
        check_fraction(info.field_name, value)
        return value


class AnalyzeParams(_Section):
    sample: int = Field(100, ge=1)
    low_confidence: float = Field(0.5, gt=0, lt=1)
    tag_quantile: float = Field(0.1, gt=0, lt=0.5)
    label_folds: int = Field(5, ge=0)
    gallery: int = Field(16, ge=0)
    seed: int = 0

    @field_validator("label_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("label_folds must be 0 (skip train) or at least 2")
        return value


class SynthesizeParams(_Section):
    enabled: bool = False
    mode: Literal["replace", "add"] = "replace"
    degradation: Literal["auto", "none"] | Degradation = "auto"
    max_shift: float = Field(0.25, ge=0)
    strength: float = Field(1.0, gt=0, le=3)
    transform: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    max_repeated_share: float = Field(0.2, ge=0, le=1)
    measure: bool = True
    seed: int = 0


class CompareParams(_Section):
    sizes: list[float] = Field(default_factory=lambda: [0.1, 0.3, 1.0])
    min_steps: int = Field(300, ge=1)
    end_to_end: bool = True
    components: int = Field(20, ge=1)
    transfer: bool = True
    # None: pre-train on train's non-target sources; else a .keras file, a registered models:/NAME/VERSION, or
    # a local keras-hub preset directory (Backbone.save_to_preset); preset names and handles never download.
    transfer_source: str | None = Field(None, min_length=1)
    freeze: Literal["auto", "body", "none"] = "auto"
    small_target: int = Field(1000, ge=1)
    multitask: bool | Literal["auto"] = "auto"
    missing_share: float = Field(0.3, ge=0, lt=1)

    @field_validator("sizes")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if not value or not all(0 < share <= 1 for share in value):
            raise ValueError(f"sizes must be shares of the training examples in (0, 1], got {value}")
        return value

    @field_validator("transfer_source")
    @classmethod
    def _on_disk(cls, value: str | None) -> str | None:
        if value is not None and "://" in value:
            raise ValueError(
                f"transfer_source {value!r} is a download handle: name a .keras file, models:/NAME/VERSION "
                "or a local keras-hub preset directory (nothing is downloaded)"
            )
        return value


class ImproveParams(_Section):
    max_iterations: int = Field(3, ge=0)
    trials: int = Field(4, ge=1)
    seed: int = 0


ENV_PREFIX = "env:"  # a params value read from the environment variable named after it


class SweepParams(_Section):
    mode: Literal["panda", "caviar"] = "caviar"
    rounds: int = Field(2, ge=1)
    trials: int = Field(8, ge=1)
    zoom: float = Field(0.25, gt=0, le=1)
    sampler: Literal["random", "tpe"] = "random"
    workers: int = Field(2, ge=1)
    dask_address: str | None = None
    pruner: Literal["auto", "halving", "median", "none"] = "auto"
    epochs: int | None = Field(None, ge=1)
    coarse_epochs: Annotated[int, Field(ge=1)] | Literal["auto"] | None = "auto"
    focus: int = Field(4, ge=1, le=4)
    seed: int = 0
    storage: str | None = None
    space: dict[str, dict[str, Any]] = Field(default_factory=lambda: dict(DEFAULT_SPACE))

    # params.yaml is in git, its values in dvc.lock and in Prefect's flow-run parameters: a URL holds no
    # password there; `env:NAME` reads it from the environment variable NAME when the sweep runs.
    @field_validator("storage", "dask_address")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        if value and not value.startswith(ENV_PREFIX) and urlsplit(value).password:
            raise ValueError(
                "holds a password, which would end up in git, dvc.lock and Prefect: put the URL in an "
                f"environment variable and write {ENV_PREFIX}NAME here"
            )
        return value

    def address(self, key: Literal["storage", "dask_address"]) -> str | None:
        """sweep.storage or sweep.dask_address as the sweep uses it: `env:NAME` read from the environment."""
        value = getattr(self, key)
        if not value or not value.startswith(ENV_PREFIX):
            return value
        name = value.removeprefix(ENV_PREFIX)
        if not os.environ.get(name):
            raise UserError(f"params.yaml sweep.{key}: {value}, but environment variable {name} is not set")
        return os.environ[name]

    # What a mode implies, in one place. Panda: one model at a time, babysat (one worker, no pruning or
    # screening by default, patience inside the trial). Caviar: many in parallel, halved.
    @property
    def babysits(self) -> bool:
        """Whether trials are babysat (panda): each watched epoch by epoch, stopped when it stalls."""
        return self.mode == "panda"

    @property
    def local_workers(self) -> int:
        """Processes of the local pool: one for the panda, who babysits one model at a time."""
        return 1 if self.babysits else self.workers

    @property
    def pruning(self) -> str:
        """The pruner in effect: `auto` is successive halving for caviar, none for the babysat panda."""
        if self.pruner != "auto":
            return self.pruner
        return "none" if self.babysits else "halving"

    def screen_epochs(self, epochs: int) -> int | None:
        """Epochs of each trial of the coarse round when it screens (round 1 of several): `auto` is
        successive halving's first rung in caviar mode, and no screening for the babysat panda. None:
        the coarse round trains its trials to `epochs` like the finer rounds."""
        screen = self.coarse_epochs
        if screen == "auto":
            screen = None if self.babysits else first_rung(epochs)
        return screen if self.rounds > 1 and screen is not None and screen < epochs else None

    @model_validator(mode="after")
    def _space(self) -> SweepParams:
        try:
            SearchSpace.from_params(self.space, self.focus)
        except ValueError as error:
            raise ValueError(str(error).removeprefix("sweep.")) from None
        return self


class DriftParams(_Section):
    mode: Literal["off", "warn", "fail"] = "warn"
    threshold: float = Field(0.1, gt=0)
    bins: int = Field(10, ge=2)


def inside_project(value: str) -> str:
    path = Path(value)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"'{value}' must be a path inside the project, relative to its root")
    return value


class ScheduleParams(_Section):
    landing: str = "data/landing"
    quarantine: str = "data/quarantine"
    settle_s: float = Field(5.0, ge=0)

    @field_validator("landing", "quarantine")
    @classmethod
    def _inside(cls, value: str) -> str:
        return inside_project(value)


class MlflowParams(_Section):
    experiment: str = "mlstrategy"
    registered_model: str = Field("mlstrategy", min_length=1)


class Params(_Section):
    data: DataParams = DataParams()
    ingest: IngestParams = IngestParams()
    drift: DriftParams = DriftParams()
    split: SplitPolicy = SplitPolicy()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateParams = EvaluateParams()
    diagnose: DiagnoseParams = DiagnoseParams()
    analyze: AnalyzeParams = AnalyzeParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    compare: CompareParams = CompareParams()
    improve: ImproveParams = ImproveParams()
    sweep: SweepParams = SweepParams()
    schedule: ScheduleParams = ScheduleParams()
    mlflow: MlflowParams = MlflowParams()

    @model_validator(mode="before")
    @classmethod
    def _data_shape_to_train(cls, raw: Any) -> Any:
        """The model reads the data's shape: image families reshape rows to data.image_shape, a table
        model takes one input per column of data.features. Both reach the train config from here."""
        if isinstance(raw, dict) and isinstance(raw.get("train", {}), dict):
            for key, source in (("image_shape", "data.image_shape"), ("columns", "data.features")):
                if key in raw.get("train", {}):
                    raise ValueError(f"train.{key}: not a knob; set {source}")
            data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
            features = data.get("features") if isinstance(data.get("features"), dict) else {}
            columns = [[c, k] for c, k in features.items() if k != "ignore"]
            raw = {
                **raw,
                "train": {**raw.get("train", {}), "image_shape": data.get("image_shape"), "columns": columns},
            }
        return raw

    @model_validator(mode="after")
    def _family_reads_the_data(self) -> Params:
        if self.data.text_column and self.data.image_shape:
            raise ValueError(
                "data.text_column and data.image_shape: the data is text or images; set the other to null"
            )
        kind = "text" if self.data.text_column else "image" if self.data.image_shape else "tabular"
        if self.train.family != "auto" and kind not in FAMILY_KINDS[self.train.family]:
            raise ValueError(
                f"train.family: {self.train.family!r} cannot read {kind} data "
                f"(it reads {' or '.join(FAMILY_KINDS[self.train.family])}; "
                f"auto picks {DEFAULT_FAMILY[kind]!r})"
            )
        return self

    @property
    def trial_epochs(self) -> int:
        """Epochs of a sweep trial: sweep.epochs, else train.epochs."""
        return self.sweep.epochs or self.train.epochs

    def trial_config(self, values: dict[str, Any], epochs: int | None = None) -> TrainConfig:
        """The train config of a candidate: train's with `values` (knob -> value, from the search space)
        set, for `epochs` (default: `trial_epochs`): how the sweep builds its trials."""
        return configure(self.train, {**values, "epochs": epochs or self.trial_epochs})

    @model_validator(mode="after")
    def _coarse_round_screens(self) -> Params:
        epochs = self.trial_epochs
        if isinstance(self.sweep.coarse_epochs, int) and self.sweep.coarse_epochs >= epochs:
            raise ValueError(
                f"sweep.coarse_epochs: {self.sweep.coarse_epochs} must be below the trials' epochs "
                f"({epochs}, sweep.epochs or train.epochs), or null to train the coarse round fully"
            )
        return self

    @model_validator(mode="after")
    def _metric_exists_for_the_task(self) -> Params:
        classes = len(self.data.labels) if self.data.labels else None
        try:
            check_metric(self.evaluate.optimizing_metric, classes, self.data.weight_column is not None)
        except ValueError as error:
            raise ValueError(f"evaluate.optimizing_metric: {error}") from None
        return self


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise UserError naming every bad key."""
    if not path.is_file():
        raise UserError(f"{path}: not found (every knob of the pipeline lives there)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections (data, split, train, ...)")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise UserError(f"{path}: invalid parameters:\n{format_validation_error(error)}") from None


def format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            message = "unknown key (check the spelling against the documented params.yaml)"
        elif item["type"] not in ("value_error", "assertion_error") and "input" in item:
            message += f" (got {item['input']!r})"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)
