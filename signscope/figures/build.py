"""Gather the inspection tables a figure needs from runs, then draw it.

The tables come from the inspection API (``signscope.api``) and are computed once per run or
pair and shared by the figures that need them (``last-flip``, ``flip-count`` and
``flips-init-diff`` all read one ``Run.flips()`` call per run). A figure the runs cannot make
raises :class:`FigureUnavailable` with the reason; the others are unaffected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import altair as alt
import polars as pl

from signscope.errors import SignscopeError, UsageError
from signscope.figures import FIGURES
from signscope.figures.accuracy import accuracy_chart
from signscope.figures.bn import bn_gamma_chart
from signscope.figures.common import FigureUnavailable
from signscope.figures.compare import mask_overlap_chart, sign_agreement_chart
from signscope.figures.flips import flip_count_chart, flips_init_diff_chart, last_flip_chart


@dataclass
class Figure:
    """One requested figure: its chart, or why it could not be drawn."""

    name: str
    chart: alt.TopLevelMixin | None = None
    reason: str | None = None


def _same_run(run, path: str | os.PathLike) -> bool:
    if run.label == str(path):
        return True
    try:
        return Path(run.path).resolve() == Path(path).resolve()
    except OSError:
        return False


class FigureInputs:
    """The runs of one ``export``/``report`` call and the tables computed from them, cached.

    ``level`` is the level of the single-level figures (``bn-gamma``, ``last-flip``,
    ``flip-count``); by default the last level that every run has, so that runs of different
    lengths are compared at the same sparsity. ``reference`` is where the flip figures count
    from, as in :meth:`signscope.run.Run.flips`.
    """

    def __init__(
        self,
        runs: Sequence[str | os.PathLike],
        pair: Sequence[str] | None = None,
        level: int | None = None,
        reference: str | os.PathLike = "init",
    ) -> None:
        from signscope.api import open_run

        if not runs and not pair:
            raise UsageError("give at least one run")
        self.runs = [open_run(r) for r in runs]
        self.pair = None
        if pair:
            self.pair = tuple(
                next((r for r in self.runs if _same_run(r, p)), None) or open_run(p) for p in pair
            )
            if not self.runs:
                self.runs = list(dict.fromkeys(self.pair))
        elif len(self.runs) >= 2:
            self.pair = (self.runs[0], self.runs[1])
        last_common = min(r.levels[-1] for r in self.runs)
        if level is not None and level > last_common:
            worst = min(self.runs, key=lambda r: r.levels[-1])
            raise UsageError(f"--level {level}: {worst.label} has levels 0..{worst.levels[-1]}")
        if level is not None and level < 0:
            raise UsageError(f"--level {level}: levels start at 0")
        self.level = last_common if level is None else level
        self.reference = reference
        self._flips: dict[tuple[int, int | None], dict[str, pl.DataFrame]] = {}

    @cached_property
    def run_methods(self) -> dict[str, str | None]:
        return {r.label: r.method for r in self.runs}

    @property
    def pair_methods(self) -> dict[str, str | None]:
        return {r.label: r.method for r in self.pair or ()}

    def flips(self, run, at_level: int | None) -> dict[str, pl.DataFrame]:
        # The last level is the default: one cache entry (and one pass over the files) for both.
        at_level = None if at_level == run.levels[-1] else at_level
        key = (id(run), at_level)
        if key not in self._flips:
            self._flips[key] = run.flips(at_level=at_level, reference=self.reference)
        return self._flips[key]

    def need_pair(self, figure: str):
        """The pair the pair figures compare, or why there is none."""
        if self.pair is None:
            raise FigureUnavailable(
                figure, f"compares two runs, got {len(self.runs)}; give two runs or --pair A B"
            )
        return self.pair

    # ------------------------------------------------------------------ tables
    @cached_property
    def accuracy(self) -> dict[str, pl.DataFrame]:
        from signscope.api import acc

        return acc(self.runs)

    @cached_property
    def masks(self) -> pl.DataFrame:
        from signscope.api import masks

        a, b = self.need_pair("mask-overlap")
        return masks(a, b, per_layer=True)

    @cached_property
    def signs(self) -> pl.DataFrame:
        from signscope.api import signs

        a, b = self.need_pair("sign-agreement")
        return signs(a, b)

    @cached_property
    def bn(self) -> pl.DataFrame:
        frames = [r.bn(self.level)["bn"] for r in self.runs]
        return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()

    def flip_histogram(self, table: str) -> pl.DataFrame:
        return pl.concat(
            [self.flips(r, self.level)[table] for r in self.runs], how="vertical_relaxed"
        )

    # ------------------------------------------------------------------ figures
    def chart(self, name: str) -> alt.TopLevelMixin:
        if name not in _BUILDERS:
            raise UsageError(f"--figure {name}: choose from {', '.join(FIGURES)}")
        return _BUILDERS[name](self)


def _accuracy(inp: FigureInputs) -> alt.TopLevelMixin:
    return accuracy_chart(inp.accuracy["accuracy"])


def _last_flip(inp: FigureInputs) -> alt.TopLevelMixin:
    return last_flip_chart(inp.flip_histogram("last_flip"), inp.run_methods, inp.level)


def _flip_count(inp: FigureInputs) -> alt.TopLevelMixin:
    return flip_count_chart(inp.flip_histogram("flip_count"), inp.run_methods, inp.level)


def _flips_init_diff(inp: FigureInputs) -> alt.TopLevelMixin:
    a, b = inp.need_pair("flips-init-diff")
    return flips_init_diff_chart(
        inp.flips(a, None)["levels"],
        inp.flips(b, None)["levels"],
        a.label,
        b.label,
        inp.pair_methods,
    )


def _mask_overlap(inp: FigureInputs) -> alt.TopLevelMixin:
    return mask_overlap_chart(inp.masks, inp.need_pair("mask-overlap")[0].summary())


def _bn_gamma(inp: FigureInputs) -> alt.TopLevelMixin:
    return bn_gamma_chart(inp.bn, inp.run_methods)


def _sign_agreement(inp: FigureInputs) -> alt.TopLevelMixin:
    return sign_agreement_chart(inp.signs, inp.need_pair("sign-agreement")[0].summary())


_BUILDERS: dict[str, Callable[[FigureInputs], alt.TopLevelMixin]] = {
    "accuracy": _accuracy,
    "last-flip": _last_flip,
    "flip-count": _flip_count,
    "flips-init-diff": _flips_init_diff,
    "mask-overlap": _mask_overlap,
    "bn-gamma": _bn_gamma,
    "sign-agreement": _sign_agreement,
}


def build(inputs: FigureInputs, names: Sequence[str] = FIGURES) -> list[Figure]:
    """Every figure in ``names`` (in that order), each drawn or carrying its reason.

    A user-facing problem with one figure (a pair of different architectures, no BatchNorm)
    does not stop the others; bugs still raise.
    """
    out = []
    for name in dict.fromkeys(names):
        try:
            out.append(Figure(name, chart=inputs.chart(name)))
        except FigureUnavailable as exc:
            out.append(Figure(name, reason=exc.reason))
        except UsageError:
            raise
        except SignscopeError as exc:
            out.append(Figure(name, reason=str(exc)))
    return out
