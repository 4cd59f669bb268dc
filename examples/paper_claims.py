"""The paper's claims as comparisons of two measured quantities, their verdicts, and the
results page that examples/paper_on_cpu.py writes (docs/results.md).

Every claim says that quantity A exceeds quantity B (LRR's accuracy exceeds IMP's, IMP's mean
last flip lies later than LRR's, ...). Both are measured on every seed's runs at three levels:
the ones nearest 50% and 80% sparsity, and the last. At each level the verdict compares the
95% Student-t intervals over the seeds: **holds** when A's interval lies wholly above B's,
**does not hold** when it lies wholly below, **inconclusive** when they overlap. A claim that
two quantities match can only fail (its intervals apart) or be inconclusive. The row's
verdict: holds if it holds at one level at least and fails at none, does not hold if it fails
at one level at least and holds at none, inconclusive otherwise.

All numbers come from the signscope inspection API, the same functions as ``signscope flips``,
``acc``, ``masks`` and ``bn``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import signscope
from signscope.metrics.accuracy import mean_ci

Runs = Mapping[tuple[str, int], Path]

# (folder below the figures folder, experiments, `signscope export --figure` names, one seed)
# Accuracy panels plot all seeds as mean and interval; the others the first seed's runs.
FIGURES = (
    ("fig02a-baselines", ("imp", "lrr", "lrr+bn-rewind"), ("accuracy",), False),
    ("fig02bc-random-masks", ("imp-rand", "lrr-rand", "lrr-rand+bn-rewind"), ("accuracy",), False),
    ("fig03-lrr-mask", ("imp", "lrr", "imp+lrr-mask"), ("accuracy",), False),
    (
        "fig04-imp-mask",
        ("imp", "lrr", "lrr+imp-mask", "lrr+bn-rewind+imp-mask"),
        ("accuracy",),
        False,
    ),
    ("fig05-sign-flips", ("lrr", "imp"), ("last-flip", "flip-count"), True),
    ("fig06-sign-perturbation", ("imp", "lrr", "imp+perturb", "lrr+perturb"), ("accuracy",), False),
    ("fig07cd-lrr-mask-and-signs", ("imp", "lrr", "imp+lrr-mask+lrr-sign"), ("accuracy",), False),
    (
        "fig10-11-bn-gamma",
        ("imp", "lrr", "lrr+imp-mask", "lrr+bn-rewind+imp-mask"),
        ("bn-gamma",),
        True,
    ),
    ("fig13-flips-from-init", ("lrr", "imp"), ("flips-init-diff",), True),
    ("fig14ab-random-mask-flips", ("lrr-rand", "imp-rand"), ("last-flip", "flip-count"), True),
    ("fig14cd-lrr-mask-flips", ("lrr", "imp+lrr-mask"), ("last-flip", "flip-count"), True),
    ("masks-imp-vs-lrr", ("lrr", "imp"), ("mask-overlap", "sign-agreement"), True),
)


# --------------------------------------------------------------------------- quantities


@cache
def _run(path: Path) -> signscope.Run:
    return signscope.open_run(path)


@cache
def _flips(path: Path, level: int) -> dict:
    return _run(path).flips(at_level=level)


def _histogram_mean(frame, column: str, keep: Callable[[int], bool]) -> float:
    pairs = [(v, c) for v, c in zip(frame[column], frame["count"], strict=True) if keep(v)]
    total = sum(c for _, c in pairs)
    return sum(v * c for v, c in pairs) / total if total else math.nan


@dataclass(frozen=True)
class Quantity:
    """A number measured on one seed's runs at one level."""

    label: str
    unit: str  # "acc", "count", "level", "share", "ratio"
    measure: Callable[[Runs, int, int], float]


def accuracy(name: str) -> Quantity:
    def measure(runs: Runs, seed: int, level: int) -> float:
        summary = _run(runs[name, seed]).summary()
        return float(summary.filter(summary["level"] == level)["test_acc"][0])

    return Quantity(f"{name} accuracy", "acc", measure)


def flips_init(name: str) -> Quantity:
    def measure(runs: Runs, seed: int, level: int) -> float:
        levels = _flips(runs[name, seed], level)["levels"]
        return float(levels["flips_init"][-1])

    return Quantity(f"{name} flips_init", "count", measure)


def mean_last_flip(name: str) -> Quantity:
    """Mean last_flip over the weights alive at the level that flipped at least once (Fig 5
    top: the later, the longer the signs kept changing)."""

    def measure(runs: Runs, seed: int, level: int) -> float:
        return _histogram_mean(
            _flips(runs[name, seed], level)["last_flip"], "last_flip", lambda v: v >= 0
        )

    return Quantity(f"{name} mean last_flip", "level", measure)


def back_and_forth(name: str) -> Quantity:
    """Share of the weights alive at the level whose sign switched twice or more along its
    trajectory (Fig 5 bottom: flipping back and forth)."""

    def measure(runs: Runs, seed: int, level: int) -> float:
        hist = _flips(runs[name, seed], level)["flip_count"]
        total = sum(hist["count"])
        return (
            sum(c for v, c in zip(hist["flip_count"], hist["count"], strict=True) if v >= 2) / total
        )

    return Quantity(f"{name} share flip_count >= 2", "share", measure)


def bn_near_zero(name: str) -> Quantity:
    """Share of all BatchNorm channels with |gamma| < 1e-3 (Figs 10, 11)."""

    def measure(runs: Runs, seed: int, level: int) -> float:
        bn = _run(runs[name, seed]).bn(level=level)["bn"]
        return sum(f * c for f, c in zip(bn["frac_zero"], bn["count"], strict=True)) / sum(
            bn["count"]
        )

    return Quantity(f"{name} BN frac_zero", "share", measure)


def jaccard(a: str, b: str) -> Quantity:
    def measure(runs: Runs, seed: int, level: int) -> float:
        overlap = signscope.masks(runs[a, seed], runs[b, seed])
        return float(overlap.filter(overlap["level"] == level)["jaccard"][0])

    return Quantity(f"Jaccard({a}, {b})", "ratio", measure)


def constant(value: float, label: str) -> Quantity:
    return Quantity(label, "ratio", lambda runs, seed, level: value)


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    text: str
    figure: str
    a: Quantity  # claimed larger (or, with match=True, claimed equal to b)
    b: Quantity
    match: bool = False
    paired: bool = True  # A and B are measured on runs of one seed (not against a constant)


CLAIMS = (
    Claim("LRR reaches a higher accuracy than IMP", "Sec 3", accuracy("lrr"), accuracy("imp")),
    Claim(
        "LRR's mask is better: IMP trained on LRR's mask beats IMP",
        "Fig 3",
        accuracy("imp+lrr-mask"),
        accuracy("imp"),
    ),
    Claim(
        "LRR optimises IMP's mask better than IMP does",
        "Fig 4",
        accuracy("lrr+imp-mask"),
        accuracy("imp"),
    ),
    Claim(
        "LRR with BN rewinding on IMP's mask beats IMP",
        "Fig 4",
        accuracy("lrr+bn-rewind+imp-mask"),
        accuracy("imp"),
    ),
    Claim(
        "On one random mask, LRR-rand beats IMP-rand",
        "Fig 2b,c",
        accuracy("lrr-rand"),
        accuracy("imp-rand"),
    ),
    Claim(
        "On one random mask, LRR-rand with BN rewinding beats IMP-rand",
        "Fig 2b,c",
        accuracy("lrr-rand+bn-rewind"),
        accuracy("imp-rand"),
    ),
    Claim(
        "LRR's signs stop changing at earlier levels than IMP's (mean last flip)",
        "Fig 5 top",
        mean_last_flip("imp"),
        mean_last_flip("lrr"),
    ),
    Claim(
        "IMP flips signs back and forth more than LRR (share switching twice or more)",
        "Fig 5 bottom",
        back_and_forth("imp"),
        back_and_forth("lrr"),
    ),
    Claim(
        "LRR moves more signs away from initialisation than IMP (flips_init)",
        "Fig 13",
        flips_init("lrr"),
        flips_init("imp"),
    ),
    Claim(
        "On a random mask, LRR-rand's signs also stop changing earlier than IMP-rand's",
        "Fig 14a,b",
        mean_last_flip("imp-rand"),
        mean_last_flip("lrr-rand"),
    ),
    Claim(
        "Even on LRR's mask, IMP moves fewer signs from initialisation than LRR",
        "Fig 14c,d",
        flips_init("lrr"),
        flips_init("imp+lrr-mask"),
    ),
    Claim(
        "With 30% of signs flipped at level 1, LRR still beats the IMP baseline",
        "Fig 6",
        accuracy("lrr+perturb"),
        accuracy("imp"),
    ),
    Claim(
        "With 30% of signs flipped at level 1, IMP falls below its baseline",
        "Fig 6",
        accuracy("imp"),
        accuracy("imp+perturb"),
    ),
    Claim(
        "IMP's rewound magnitudes with LRR's mask and signs beat IMP",
        "Fig 7c,d",
        accuracy("imp+lrr-mask+lrr-sign"),
        accuracy("imp"),
    ),
    Claim(
        "... and match LRR",
        "Fig 7c,d; 12",
        accuracy("imp+lrr-mask+lrr-sign"),
        accuracy("lrr"),
        match=True,
    ),
    Claim(
        "BN rewinding leaves fewer BN channels at gamma ~ 0 for LRR on IMP's mask",
        "Figs 10, 11",
        bn_near_zero("lrr+imp-mask"),
        bn_near_zero("lrr+bn-rewind+imp-mask"),
    ),
    Claim(
        "IMP and LRR find different masks (Jaccard below 1)",
        "Sec 3",
        constant(1.0, "1"),
        jaccard("lrr", "imp"),
        paired=False,
    ),
)

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive"
MARK = {HOLDS: "✓", FAILS: "✗", OPEN: "~"}


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: list[float]) -> Estimate:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return cls(math.nan, None, None)
        mean, low, high = mean_ci(values)
        return cls(mean, low, high)


def verdict(a: Estimate, b: Estimate, match: bool = False) -> str:
    """Apart intervals decide; overlapping ones (or a single seed) are inconclusive."""
    if None in (a.low, a.high, b.low, b.high):
        return OPEN
    if a.low > b.high:
        return FAILS if match else HOLDS
    if a.high < b.low:
        return FAILS
    return OPEN


def overall(verdicts: list[str]) -> str:
    if HOLDS in verdicts and FAILS not in verdicts:
        return HOLDS
    if FAILS in verdicts and HOLDS not in verdicts:
        return FAILS
    return OPEN


# --------------------------------------------------------------------------- page


def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    scale, digits = {
        "acc": (100, 1),
        "share": (100, 1),
        "points": (100, 1),
        "count": (1, 0),
        "level": (1, 2),
    }.get(unit, (1, 3))
    # Rounding first and adding 0.0 turns a tiny negative bound into "0.0", not "-0.0".
    return f"{round(scale * value, digits) + 0.0:.{digits}f}"


def _cell(e: Estimate, unit: str) -> str:
    suffix = "%" if unit in ("acc", "share") else ""
    if e.low is None:
        return f"{_fmt(e.mean, unit)}{suffix}"
    return f"{_fmt(e.mean, unit)}{suffix} [{_fmt(e.low, unit)}, {_fmt(e.high, unit)}]"


def report_levels(runs: Runs, seed: int) -> list[tuple[int, float]]:
    """(level, sparsity) of the levels nearest 50% and 80% sparsity, and of the last level."""
    summary = _run(runs["imp", seed]).summary()
    points = list(zip(summary["level"], (1 - d for d in summary["density"]), strict=True))
    near = [min(points, key=lambda p, t=t: abs(p[1] - t)) for t in (0.5, 0.8)]
    return list(dict.fromkeys([*near, points[-1]]))  # a short run's levels may coincide


def claims_table(runs: Runs, seeds: tuple[int, ...], levels: list[tuple[int, float]]) -> list[str]:
    head = " | ".join(f"{100 * s:.0f}% sparsity (level {lv})" for lv, s in levels)
    lines = [
        f"| claim | figure | {head} | verdict |",
        "| --- | --- | " + " | ".join("---" for _ in levels) + " | --- |",
    ]
    for claim in CLAIMS:
        cells, verdicts = [], []
        for level, _ in levels:
            a = Estimate.of([claim.a.measure(runs, s, level) for s in seeds])
            b = Estimate.of([claim.b.measure(runs, s, level) for s in seeds])
            v = verdict(a, b, claim.match)
            verdicts.append(v)
            cells.append(f"{_cell(a, claim.a.unit)}<br>vs {_cell(b, claim.b.unit)} {MARK[v]}")
        lines.append(
            f"| {claim.text}<br><sub>{claim.a.label} vs {claim.b.label}</sub> | {claim.figure} | "
            + " | ".join(cells)
            + f" | **{overall(verdicts)}** |"
        )
    return lines


def paired_table(runs: Runs, seeds: tuple[int, ...], levels: list[tuple[int, float]]) -> list[str]:
    """A - B per seed, mean and interval: the runs of one seed share their initialisation,
    rewind point and data order, so the difference leaves out the spread between seeds."""
    head = " | ".join(f"{100 * s:.0f}%" for _, s in levels)
    lines = [f"| A − B | {head} |", "| --- | " + " | ".join("---" for _ in levels) + " |"]
    for claim in CLAIMS:
        if not claim.paired:
            continue
        cells = []
        for level, _ in levels:
            diffs = [
                claim.a.measure(runs, s, level) - claim.b.measure(runs, s, level) for s in seeds
            ]
            unit = "points" if claim.a.unit in ("acc", "share") else claim.a.unit
            cells.append(_cell(Estimate.of(diffs), unit))
        lines.append(f"| {claim.a.label} − {claim.b.label} | " + " | ".join(cells) + " |")
    return lines


def accuracy_table(
    runs: Runs, seeds: tuple[int, ...], levels: list[tuple[int, float]]
) -> list[str]:
    points = [(0, 0.0), *levels]
    head = " | ".join(f"{100 * s:.0f}%" for _, s in points)
    lines = [f"| run | {head} |", "| --- | " + " | ".join("---" for _ in points) + " |"]
    for name in dict.fromkeys(name for name, _ in runs):
        q = accuracy(name)
        cells = [
            _cell(Estimate.of([q.measure(runs, s, lv) for s in seeds]), "acc") for lv, _ in points
        ]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return lines


def results_page(
    runs: Runs,
    seeds: tuple[int, ...],
    *,
    figures: Path,
    relative_to: Path,
    command: str,
    timing: Mapping,
    total: int,
) -> str:
    levels = report_levels(runs, seeds[0])
    config = _run(runs["imp", seeds[0]]).config
    link = Path(os.path.relpath(figures, relative_to))
    seed_list = ", ".join(map(str, seeds))
    calls = "one call" if timing["calls"] == 1 else f"{timing['calls']} calls"
    trained = (
        f"training the {total} runs took {timing['seconds'] / 60:.0f} minutes of wall time "
        f"({calls}; {timing['machine']})"
        if timing["runs"] >= total
        else f"{timing['runs']} of the {total} runs were trained by calls that timed it "
        f"({timing['seconds'] / 60:.0f} minutes of wall time)"
    )
    lines = [
        "# The paper's claims on MNIST-1D",
        "",
        "Written by `" + command + f"`: {trained}. Do not edit by hand: run the command again.",
        "",
        "**This is a small 1-D problem, not CIFAR.** MNIST-1D (Greydanus, 2020) has 4,000 "
        "training and 1,000 test signals of 40 samples; the network is a 1-D CNN with 28k "
        "prunable weights (`conv1d`). The paper's claims were made on ResNets with millions of "
        "weights on CIFAR-10/100, Tiny ImageNet and ImageNet. What holds or fails here says "
        "how the mechanisms behave at this scale, not whether the paper is right at its own.",
        "",
        f"Setup: the `{config.get('preset')}` preset ({config.get('levels')} levels of "
        f"{config.get('epochs')} epochs, peak LR {config.get('lr')}, {config.get('schedule')}, "
        f"batch {config.get('batch_size')}, weight decay {config.get('weight_decay')}, rewind "
        f"point: end of epoch {config.get('rewind_epoch')} of level 0, "
        f"{100 * config.get('prune_fraction', 0):.0f}% of the remaining weights pruned per level), "
        f"seeds {seed_list}. Its settings were chosen on tuning seeds 100-102 only "
        "(docs/mnist1d.md). Numbers are the mean and 95% Student-t interval over the seeds.",
        "",
        "## Claims",
        "",
        "Each row compares two measured quantities, A vs B, claimed A > B (✓ holds: A's "
        "interval wholly above B's; ✗ does not hold: wholly below; ~ inconclusive: the "
        "intervals overlap). The verdict holds if some column holds and none fails, does not "
        'hold if some column fails and none holds, and is inconclusive otherwise. "... match" '
        "can only fail or stay inconclusive: overlapping intervals do not show equality.",
        "",
        *claims_table(runs, seeds, levels),
        "",
        "Accuracies and shares are in percent; `mean last_flip` averages the level of the last "
        "sign change over the weights alive at that level that changed sign at all (SPEC "
        "section 3); `flips_init` counts alive weights whose sign differs from initialisation.",
        "",
        "### The same comparisons, paired by seed",
        "",
        "The runs of one seed share their initialisation, rewind point and data order, so the "
        "difference A − B per seed leaves out the spread between seeds. Shown for information: "
        "the verdicts above do not use it. Accuracy and share differences are in percentage "
        "points.",
        "",
        *paired_table(runs, seeds, levels),
        "",
        "## Test accuracy of every run",
        "",
        *accuracy_table(runs, seeds, levels),
        "",
        "## Figures",
        "",
        "Drawn by `signscope export`; accuracy panels over all seeds, the others from seed "
        f"{seeds[0]}.",
        "",
    ]
    for panel, _, names, _ in FIGURES:
        for name in names:
            lines += [
                f"### {panel}: {name}",
                "",
                f"![{panel} {name}]({link / panel / name}.png)",
                "",
            ]
    return "\n".join(lines)
