"""The collection stage: campaigns of framework x network x threads cells measured in fresh workers.

* :class:`CampaignSpec`, :class:`Cell` (:mod:`.spec`) - what to measure.
* :func:`run_campaign` -> :class:`CampaignResult` (:mod:`.campaign`) - every cell in a fresh worker
  process (:mod:`.worker`), each finished cell written atomically into a :class:`perfmodel.data.Dataset`;
  resumable, crash-safe.
* :func:`run_trace` (:mod:`.trace`) - long continuous runs as ``phase="trace"`` time series.
* :func:`measure_command` / :func:`collect_command` (:mod:`.command`) - the two-phase (s1 - s2) / N
  method for a whole user command.
* :func:`quick_sample` (:mod:`.quick`) - a short sample of one cell for the model CLI.

Heavy libraries load in the workers only. This stage may import ``perfmodel.data`` (the format it
writes); nothing before it imports it.
"""

from __future__ import annotations

from .campaign import CampaignResult, CellOutcome, run_campaign
from .command import collect_command, measure_command
from .quick import quick_sample
from .spec import CampaignSpec, Cell, parse_duration, parse_geometry
from .trace import TraceResult, run_trace

__all__ = ["CampaignSpec", "Cell", "CampaignResult", "CellOutcome", "run_campaign", "run_trace", "TraceResult",
           "measure_command", "collect_command", "quick_sample", "parse_duration", "parse_geometry"]
