"""perfmodel.readings.json_safe: the one converter every --json output and benchmark JSON goes through."""

from __future__ import annotations

import json
import math

import numpy as np

from perfmodel.readings import json_safe


def test_missing_figures_become_null_and_everything_is_strict_json():
    obj = {"a": math.nan, "b": [1.0, math.inf, -math.inf, (2, np.float64("nan"))], 3: {"c": np.int64(7)},
           "d": np.float32(1.5), "e": "text", "f": None, "g": True}
    out = json_safe(obj)
    assert out == {"a": None, "b": [1.0, None, None, [2, None]], "3": {"c": 7}, "d": 1.5, "e": "text",
                   "f": None, "g": True}
    assert type(out["3"]["c"]) is int
    json.loads(json.dumps(out, allow_nan=False))  # no NaN / Infinity tokens left


def test_an_array_that_is_not_a_scalar_is_written_as_text():
    assert json_safe({"x": np.arange(3)}) == {"x": str(np.arange(3))}
