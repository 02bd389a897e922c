"""Selection: rank framework x network x threads choices against a spec.

* :mod:`.spec` - :class:`Constraint`, :class:`Spec` (parsed from CLI options such as
  ``--max-power 2.5 --min-fps 10 --min-top1 0.55``) and the objectives.
* :mod:`.candidates` - :func:`candidates_from_cells`: the candidate table from
  :func:`perfmodel.data.wide_per_cell` output, zoo accuracy and model predictions, every value with
  its source (measured / predicted with interval / derived / published / unavailable: reason).
* :mod:`.pareto` - :func:`pareto_front` (mask; ties and duplicates handled).
* :mod:`.rank` - :func:`rank` -> :class:`SelectionResult` (ranked, excluded with the constraint that
  excluded each candidate, unevaluable, Pareto front, binding constraint of an infeasible spec).
"""

from __future__ import annotations

from .candidates import KEY_COLUMNS, VALUE_COLUMNS, candidates_from_cells, join_simulated_cells, missing_reasons
from .pareto import pareto_front
from .rank import PARETO_AXES, SelectionResult, rank
from .spec import CONSTRAINTS, DEFAULT_WEIGHTS, OBJECTIVES, Constraint, Spec, parse_weights

__all__ = [
    "KEY_COLUMNS", "VALUE_COLUMNS", "candidates_from_cells", "join_simulated_cells", "missing_reasons", "pareto_front",
    "PARETO_AXES", "SelectionResult", "rank", "CONSTRAINTS", "DEFAULT_WEIGHTS", "OBJECTIVES", "Constraint",
    "Spec", "parse_weights",
]
