"""The output registry: each output kind is one :class:`Output`, registered once, in one module.

A kind's ``name`` is what ``--outputs`` accepts and the key under which
:func:`analyzer.run.analyze` returns its file or files. Its entry says which files it
writes, its title in the report, what it needs from the streaming pass (a job on each
step's picture, and the picture work it brings, which sizes the encoder pool) and how it
renders. The command line's ``--outputs``, ``analyze()``'s docstring, the report's list
of pictures and the tests all iterate :func:`registered`; nothing else lists the kinds.

The built-in kinds are the modules of :mod:`analyzer.outputs`, registered in the order
its ``__init__`` imports them (the order of the report's pictures and of ``--outputs``);
:func:`register` adds another.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from analyzer.encoders import Encoders
from analyzer.errors import AnalyzerError
from analyzer.options import Analysis, Options, Selection

if TYPE_CHECKING:
    from analyzer.errors import StepError
    from analyzer.statistics import StepData

Written = Path | list[Path]  # what an output wrote: its file, or its files in order
# fn(image, step_index, *args), run on each analysed step's picture inside one encoder job
# per step (so fn and args must pickle: a module-level function, plain values)
StepJob = tuple[Callable[..., object], tuple]


class StepTap(Protocol):
    """What an output takes from each analysed step's reduced data, in this process, during the pass
    (the viewer's maps): the layer mean, and the maps of the single layers it names.

    layers: positions among the selection's layers whose float32 maps ``add`` receives in
        ``data.single_layers`` (decoded once, with the mean).
    """

    layers: tuple[int, ...]

    def add(self, data: StepData) -> None: ...

    def skip(self, error: StepError) -> None: ...


T = TypeVar("T")


class Later:
    """Work an output finishes once every output has started its own (e.g. waiting on its encoder jobs)."""

    def __init__(self, finish: Callable[[], Written | None]):
        self._finish = finish

    def result(self) -> Written | None:
        return self._finish()


@dataclass(frozen=True)
class Plan:
    """What an output knows before the streaming pass: what is analysed, where files go, the kinds chosen."""

    selection: Selection
    out: Path
    kinds: tuple[str, ...]

    @property
    def options(self) -> Options:
        return self.selection.options


@dataclass
class Context:
    """What an output renders from, after the pass.

    step_values: for each kind with a ``per_step`` job, its job's result for every analysed step, in order.
    taps: for each kind with a ``per_step_data`` tap that took part in the pass, the tap.
    written: the files of the kinds rendered before (what a ``last`` kind such as the report links to).
    closing: closed after the encoder pool has shut down (scratch files shared with worker processes).
    """

    plan: Plan
    analysis: Analysis
    encoders: Encoders
    step_values: dict[str, list]
    closing: ExitStack
    taps: dict[str, StepTap] = field(default_factory=dict)
    written: dict[str, Written] = field(default_factory=dict)
    _shared: dict = field(default_factory=dict)
    _background: ThreadPoolExecutor | None = None  # made by the first in_background call

    @property
    def out(self) -> Path:
        return self.plan.out

    @property
    def options(self) -> Options:
        return self.plan.options

    def selected(self, name: str) -> bool:
        return name in self.plan.kinds

    def in_background(self, fn: Callable[[], Written | None]) -> Future:
        """Start ``fn`` now in a thread of this process: work that must stay here (the video's encoding, the
        viewer's page) overlaps the encoder processes' jobs instead of waiting for them to end."""
        if self._background is None:
            self._background = ThreadPoolExecutor(2, thread_name_prefix="wan-analyze-output")
            self.closing.callback(self._background.shutdown)
        return self._background.submit(fn)

    def shared(self, key: object, make: Callable[[], T]) -> T:
        """One value per analysis for the outputs that share a stage (the per-word views): made on first use."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]


@dataclass(frozen=True)
class Output:
    """One output kind.

    name: its ``--outputs`` name and its key in analyze()'s result.
    title: its heading in the report.
    files: what it writes, for people (``analyze()``'s docstring lists it).
    render: draws and writes it after the pass; returns its file(s), None when it wrote nothing, or
        a Future or :class:`Later` of those (waited for once every output has started its work).
    per_step: what it needs from the streaming pass: given the plan, the job to run on each step's
        picture (the pass draws the pictures only when a chosen kind has one).
    per_step_data: given the plan, a :class:`StepTap` that takes each step's reduced data in this process
        during the pass, or None when it will read what it needs itself (called before the pass).
    work_pixels: roughly how many pixels its encoder jobs write: what decides on worker processes.
    report: its body in the report's "Pictures" section, from (analysis, what it wrote, link); by
        default the picture itself (one file) or a list of links (several).
    last: rendered after every other kind, with their files in ``Context.written`` (the report).
    includes: other kinds written whenever this one is named (``words`` brings its contact sheet,
        ``word_sheet``, as it always has); each may still be named alone.
    """

    name: str
    title: str
    files: str
    render: Callable[[Context], object]
    per_step: Callable[[Plan], StepJob] | None = None
    per_step_data: Callable[[Plan], StepTap | None] | None = None
    work_pixels: Callable[[Selection], int] | None = None
    report: Callable[[Analysis, Written, Callable[[Path], str]], list[str]] | None = None
    last: bool = False
    includes: tuple[str, ...] = ()


_REGISTRY: dict[str, Output] = {}


def register(output: Output) -> Output:
    """Add an output kind (after those registered before); its name must be new and usable in a comma list."""
    name = output.name
    if not name or name != name.strip() or "," in name:
        raise ValueError(f"output name {name!r} must be a non-empty word without commas or outer spaces")
    if name in _REGISTRY:
        raise ValueError(f"an output kind {name!r} is registered already")
    if name in output.includes:
        raise ValueError(f"output kind {name!r} cannot include itself")
    _REGISTRY[name] = output
    return output


def unregister(name: str) -> None:
    """Remove a kind added by :func:`register` (a test's toy kind)."""
    del _REGISTRY[name]


def registered() -> list[Output]:
    """Every output kind, in registration order."""
    return list(_REGISTRY.values())


def names() -> list[str]:
    return list(_REGISTRY)


def select(spec: str | list[str] | None) -> list[Output]:
    """The kinds named in ``spec`` (a comma list or a list) and those they include, in registration order;
    None = all of them."""
    if spec is None:
        return registered()
    wanted = spec.split(",") if isinstance(spec, str) else list(spec)
    wanted = [str(k).strip() for k in wanted if str(k).strip()]
    unknown = [k for k in wanted if k not in _REGISTRY]
    if unknown or not wanted:
        raise AnalyzerError(f"unknown output {unknown[0] if unknown else '(none)'!r}; "
                            f"choose from {', '.join(_REGISTRY)}")
    chosen = set(wanted)
    for name in wanted:
        chosen.update(n for n in _REGISTRY[name].includes if n in _REGISTRY)
    return [output for name, output in _REGISTRY.items() if name in chosen]


def finish(started: object) -> Written | None:
    """What an output's ``render`` returned, waited for if it is a Future or a :class:`Later`."""
    return started.result() if isinstance(started, (Future, Later)) else started


def describe(indent: str = "") -> str:
    """One line per kind: its name and its files (the docstring of ``analyze()``)."""
    return "\n".join(f"{indent}{o.name}: {o.files}" for o in registered())
