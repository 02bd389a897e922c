"""Data sets: the tidy record schema, storage, and the wide tables modelling uses.

* :mod:`.schema` - the long record format (one row per record and metric), its pandera validation and
  :class:`SchemaError`.
* :mod:`.store` - data set folders (``dataset.json`` + ``records/<cell_id>.parquet`` + JSON sidecars),
  atomic per-cell writes, resumable campaigns (:meth:`Dataset.done_cells`), :func:`merge` with metadata
  compatibility checks, flat records files for imported data.
* :mod:`.tables` - :func:`wide_per_image`, :func:`wide_per_cell`, :func:`wide_per_sample`: each a
  :class:`Table` (the frame with its per-column :class:`Provenance`, :mod:`.provenance`).
* :mod:`.cells` - a cell's counter source (the ``counter_source`` column), :func:`is_simulated`,
  :func:`splice_simulated` (other data sets' simulated cells into records).
* :mod:`.calibration` - machine calibrations (streaming bandwidth) stored with a data set.
* :mod:`.importers` - external data sets into the same schema (``armpm``).

This stage imports only foundation modules; ``perfmodel.collect`` writes into it.
"""

from __future__ import annotations

from .cells import is_simulated, splice_simulated
from .calibration import attach_calibration, dataset_calibrations, dataset_l2_bytes, gemm_speed, stream_bandwidth
from .provenance import NO_PROVENANCE, Provenance, Table, as_table, frame_of
from .schema import (
    COLUMNS,
    EXTRA_METRICS,
    KEY_COLUMNS,
    PHASES,
    SCHEMA_VERSION,
    SchemaError,
    coerce,
    empty_records,
    known_metrics,
    records_from_readings,
    validate,
)
from .store import (
    Dataset,
    compat_differences,
    compat_fields,
    dataset_metadata,
    merge,
    read_dataset,
    read_records,
    records_attrs,
    records_metadata,
    write_dataset,
    write_records,
)
from .tables import (
    base_provenances,
    column_provenance,
    implausible_cells,
    read_wide_csv,
    wide_per_cell,
    wide_per_image,
    wide_per_sample,
)

__all__ = [
    "is_simulated", "splice_simulated", "NO_PROVENANCE", "Provenance", "Table", "as_table", "frame_of",
    "attach_calibration", "dataset_calibrations", "dataset_l2_bytes", "gemm_speed", "stream_bandwidth",
    "COLUMNS", "EXTRA_METRICS", "KEY_COLUMNS", "PHASES", "SCHEMA_VERSION", "SchemaError", "coerce",
    "empty_records", "known_metrics", "records_from_readings", "validate",
    "Dataset", "compat_differences", "compat_fields", "dataset_metadata", "merge", "read_dataset",
    "read_records", "records_attrs", "records_metadata", "write_dataset", "write_records",
    "base_provenances", "column_provenance", "implausible_cells", "read_wide_csv", "wide_per_cell", "wide_per_image",
    "wide_per_sample",
]
