"""The workflows stage: what a command does, between parsing its options and printing its result.

Above collect / model / select / report (it glues them), below the CLI (which parses, calls a workflow and
prints what it returns). Workflows raise :class:`perfmodel.errors.PerfmodelError` for user errors and print
nothing: progress and notes go through a ``say`` callback the caller passes (``say(text, warn=False)``).

- :mod:`.defaults`: the checkout's shipped data sets (reference, traces, trained models);
- :mod:`.load`: a data set / records file / CSV / power file as a wide table (``fit``, ``evaluate``,
  ``predict --dataset``, ``select``, ``report``);
- :mod:`.fit`: fit and evaluate on a data set (named term sets, ``--exclude``, ``--dropna``, the fit's
  metadata);
- :mod:`.quick`: a quick sample ready to predict and the long-run estimate from a sample's own throughput;
- :mod:`.command`: a user's command: what it cannot give a model, and its sample estimate;
- :mod:`.predict`: prediction from each source (data set, CSV, quick sample, command);
- :mod:`.pipeline`: the main job's library parts (training table, prediction check, report fallbacks);
- :mod:`.select`: selection glue (spec from options, one board, model files);
- :mod:`.doctor`, :mod:`.bench`, :mod:`.collect`, :mod:`.report`: the library parts of those commands.
"""

from collections.abc import Callable

#: a progress / note callback: ``say(text)`` or ``say(text, warn=True)`` (the CLI prints it on stderr,
#: a warning in yellow); workflows call it where the command printed before they existed
Say = Callable[..., None]


def silent(text: str, warn: bool = False) -> None:  # noqa: ARG001 - the Say of a caller that wants no messages
    """A :data:`Say` that drops every message."""
