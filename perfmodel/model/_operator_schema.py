"""The checked JSON form of an operator model file (:mod:`perfmodel.model.operator`): pydantic classes, kept
apart so that a model whose exact file was checked before loads without importing pydantic
(:func:`perfmodel.model.operator.load_operator_model`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from perfmodel.model._operator_form import FEATURES, READ_VERSIONS, TREE_FEATURES, TYPE_SCHEMES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OperatorParams(_Strict):
    source: str = "units"
    kernel_predictor: str
    type_scheme: str
    overhead_form: str
    ridge_alpha: float
    n_trees: int
    random_state: int
    network_weight: float = Field(default=0.0, ge=0)


class TypePredictor(_Strict):
    coef: list[float] = Field(min_length=len(FEATURES), max_length=len(FEATURES))
    n: int
    rel_sigma: float | None
    loglinear: list[float] | None = Field(default=None, min_length=5, max_length=5)
    #: an adaptation's size correction: {"b", "ref", "lo", "hi"} (log ms), see ``_corrected``
    correction: dict[str, float] | None = None


class Overhead(_Strict):
    a: float
    b: float = Field(gt=0)


class Tree(_Strict):
    left: list[int]
    right: list[int]
    feature: list[int]
    threshold: list[float]
    value: list[float]

    @model_validator(mode="after")
    def _a_tree(self) -> "Tree":
        n = len(self.left)
        if n == 0 or any(len(x) != n for x in (self.right, self.feature, self.threshold, self.value)):
            raise ValueError("a tree's arrays must be non-empty and of one length")
        for i, (lc, rc, f) in enumerate(zip(self.left, self.right, self.feature)):
            leaf = lc == -1
            if leaf != (rc == -1) or (not leaf and not (i < lc < n and i < rc < n and 0 <= f < len(TREE_FEATURES))):
                raise ValueError(f"tree node {i}: children must come after it (or both be -1) and name a feature")
        return self


class Forest(_Strict):
    features: list[str]
    trees: list[Tree] = Field(min_length=1)


class OperatorCell(_Strict):
    framework: str
    threads: int = Field(ge=1)
    envelope: list[float] = Field(min_length=2, max_length=2)
    types: dict[str, TypePredictor]
    overhead: Overhead
    network_rel_sigma: float | None
    forest: dict[str, Forest]
    n_units: int
    unit_cv_mape: float | None
    source: str = "units"
    rules: str | None = None
    type_scheme: str | None = None

    @model_validator(mode="after")
    def _known_scheme(self) -> "OperatorCell":
        if self.type_scheme is not None and self.type_scheme not in TYPE_SCHEMES:
            raise ValueError(f"cell type_scheme {self.type_scheme!r}: one of {', '.join(TYPE_SCHEMES)}")
        return self


class OperatorDocument(_Strict):
    format: str
    schema_version: int
    params: OperatorParams
    features: list[str]
    source: dict[str, Any]
    cells: list[OperatorCell]

    @model_validator(mode="after")
    def _this_version(self) -> "OperatorDocument":
        if self.schema_version not in READ_VERSIONS or self.features != list(FEATURES):
            raise ValueError(f"schema_version {self.schema_version} with features {self.features}: this perfmodel "
                             f"reads versions {', '.join(map(str, READ_VERSIONS))} with {list(FEATURES)}")
        return self
