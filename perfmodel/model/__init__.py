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

import importlib
from typing import TYPE_CHECKING, Any

#: the package's names and the modules they live in: imported on first use (PEP 562), so that a module of this
#: package that needs none of them (``perfmodel.model.operator``: ``predict --graph``) does not pay for pandas,
#: scipy.stats and scikit-learn
_LAZY = {"fit_model": ".fit", "evaluate": ".fit", "CV_SCHEMES": ".fit", "ModelFile": ".modelfile",
         "ModelFileError": ".modelfile", "IncompatibleSampleError": ".modelfile", "load_model": ".modelfile",
         "save_model": ".modelfile"}

if TYPE_CHECKING:
    from .fit import CV_SCHEMES, evaluate, fit_model
    from .modelfile import IncompatibleSampleError, ModelFile, ModelFileError, load_model, save_model


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["fit_model", "evaluate", "CV_SCHEMES", "ModelFile", "ModelFileError", "IncompatibleSampleError",
           "load_model", "save_model"]
