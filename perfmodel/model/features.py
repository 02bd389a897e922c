"""Feature columns for the regressors: selection, product terms, log transform, provenance.

A *feature* is a column name of the wide table or a product of factors written ``a*b^2*c`` where each
factor is a column (optionally raised to a small integer power ``^k``). Product terms are computed here,
never with ``eval``, and their names are stored in model files so that prediction recomputes them from
the same columns. Examples::

    instructions_per_s                       # a plain column
    l1d_accesses_per_s*voltage_v^2           # dynamic-power term  (rate x V^2)
    voltage_v^2*freq_mhz                     # switching term       (V^2 f)
    temperature_c*voltage_v                  # leakage term         (~ exp(T) V, linearised)

:func:`powmon_terms` builds the Powmon / ARMPM style power features: every event *rate* times ``V^2``
(rate = events per cycle x cycles per second, so this is the "events per cycle x f x V^2" term summed
over active cores), plus ``V``, ``V^2 f``, optional ``T V`` (leakage) and ``cores V^2 f``;
:func:`power_features` is the fixed, a-priori set (all events, per-frequency intercepts) whose
cross-validated error needs no nesting, :func:`power_loglinear_features` its multiplicative
counterpart for a log target.

The code lives in private modules by concern; this module is the public import path of all of it:

* :mod:`._grammar` - the feature grammar (:func:`parse_feature`, :func:`compute_feature`, :func:`feature_frame`);
* :mod:`._terms` - term sets (:func:`powmon_terms`, :func:`power_features`, :func:`throughput_terms`, ...);
* :mod:`._provenance` - provenance of columns and features (:func:`feature_provenance`; the carrier is
  :class:`perfmodel.data.provenance.Table`);
* :mod:`._joins` - data joins (:func:`join_simulated`, :func:`attach_stream_time`, :func:`speed_scaled`, ...).
"""

from __future__ import annotations

from ._grammar import (NON_FEATURES, Factor, FeatureError, _key_str, base_columns, compute_feature, feature_frame,
                       feature_matrix, parse_feature, target_vector)
from ._joins import (L2_OVERFLOW_COLUMN, attach_l2_overflow, attach_macs, attach_stream_time, conv_weights_over,
                     join_simulated, speed_scaled)
from ._provenance import KEY_COLUMNS, column_provenance, feature_provenance, resolve_provenance
from ._terms import (KNOWN_TIME_COLUMNS, OVERHEAD_COLUMNS, STUDY_FEATURES, VALIDATED_POWER_EVENTS,
                     additive_throughput_terms, candidate_features, cycles_restate_cores, frame_overhead,
                     freq_level_terms, per_thread_terms, power_event_names, power_features, power_loglinear_features,
                     power_selection_terms, powmon_terms, throughput_terms, validated_power_features,
                     voltage_fixed_per_frequency)

__all__ = [
    "OVERHEAD_COLUMNS", "KNOWN_TIME_COLUMNS", "frame_overhead", "additive_throughput_terms",
    "STUDY_FEATURES", "FeatureError", "parse_feature", "base_columns", "compute_feature", "feature_frame",
    "feature_matrix", "target_vector", "candidate_features", "powmon_terms", "freq_level_terms",
    "power_features", "power_loglinear_features", "resolve_provenance", "power_event_names",
    "power_selection_terms", "VALIDATED_POWER_EVENTS", "validated_power_features", "cycles_restate_cores",
    "voltage_fixed_per_frequency",
    "feature_provenance", "column_provenance", "Factor", "KEY_COLUMNS", "join_simulated", "attach_macs",
    "attach_stream_time", "attach_l2_overflow", "speed_scaled", "per_thread_terms", "conv_weights_over", "L2_OVERFLOW_COLUMN",
    "throughput_terms",
]

