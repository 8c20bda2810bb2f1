"""The output kinds of ``wan-analyze``: one module each, registered below (the registry: :mod:`.registry`).

The order of the registration is the order of ``--outputs``, of the report's pictures and of
rendering. To add a kind, write a module with an :class:`Output` named ``OUTPUT`` and add it
to the tuple below (or call :func:`register` from your own code): the command line,
``analyze()``, its result and the report pick it up.
"""

from __future__ import annotations

from analyzer.outputs import (
    animation,
    heads,
    layers,
    montage,
    padding,
    report,
    segmentation,
    statistics,
    steps,
    video,
    viewer,
    word_sheet,
    words,
)
from analyzer.outputs.registry import (
    Context,
    Later,
    Output,
    Plan,
    StepJob,
    StepTap,
    Written,
    describe,
    finish,
    names,
    register,
    registered,
    select,
    unregister,
)

__all__ = ["Context", "Later", "Output", "Plan", "StepJob", "StepTap", "Written", "describe", "finish", "names",
           "register", "registered", "select", "unregister"]

# statistics and the viewer come just before the report, which links their files
for _kind in (montage, animation, word_sheet, segmentation, padding, layers, heads, steps, words, video, statistics,
              viewer, report):
    register(_kind.OUTPUT)
