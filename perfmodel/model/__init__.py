"""Modelling: regressors from hardware metrics to throughput / power, CV, selection, model files.

* :mod:`.features` - feature names (columns, products, ``log()``, indicators), Powmon power terms, the
  throughput feature set, :func:`~.features.join_simulated`, provenance of features.
* :mod:`.estimators` - scikit-learn compatible OLS, log-linear and ridge regressors with intervals.
* :mod:`.cv` - k-fold / leave-one-group-out CV, metrics, baselines (mean, per-frequency mean, MACs-only).
* :mod:`.selection` - stepwise forward selection by CV error with a VIF cap.
* :mod:`.stats` - statsmodels OLS tables (p-values, VIF, prediction intervals).
* :mod:`.modelfile` - JSON model files (:func:`save_model`, :func:`load_model`, :class:`ModelFile`).
* :mod:`.fit` - :func:`fit_model` and :func:`evaluate`.
"""

from __future__ import annotations

from .fit import CV_SCHEMES, evaluate, fit_model
from .modelfile import IncompatibleSampleError, ModelFile, ModelFileError, load_model, save_model

__all__ = ["fit_model", "evaluate", "CV_SCHEMES", "ModelFile", "ModelFileError", "IncompatibleSampleError",
           "load_model", "save_model"]
