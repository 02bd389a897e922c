"""The operator model's form and file constants, shared by :mod:`perfmodel.model.operator` and its file schema
(:mod:`perfmodel.model._operator_schema`) without either importing the other at import time."""

from __future__ import annotations

FORMAT = "perfmodel-operator-model"
#: written; 2 added params.network_weight and cells[].type_scheme (an older perfmodel refuses a version-2 file by
#: its version, not by an unknown field)
SCHEMA_VERSION = 2
READ_VERSIONS = (1, 2)  #: read (a version-1 file has the new fields' defaults)
KERNEL_PREDICTORS = ("nnls", "ridge", "loglinear", "forest")
TYPE_SCHEMES = ("base", "split", "stem", "stem2")
OVERHEAD_FORMS = ("add", "affine")
#: what the kernel predictors are fitted on: the sampled units, the framework's per-node profiles of networks
#: (kernels timed in their network), or both
SOURCES = ("units", "profiles", "both", "auto")  # auto: profiles where the data set has them for the cell
FEATURES = ("one", "mmacs", "in_mb", "out_mb", "w_mb")
TREE_FEATURES = ("mmacs", "in_mb", "out_mb", "w_mb", "k", "s", "h", "c_in", "c_out", "groups")
