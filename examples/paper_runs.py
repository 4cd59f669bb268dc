"""What the ``examples/fig*.py`` scripts share: the paper's setups, the runs a figure needs, and
running their ``signscope`` commands.

Each figure script describes its figure as ``signscope train`` / ``neuron`` / ``acc`` /
``export`` commands through a :class:`Pipeline`, which runs them in one of three modes:

- default: the paper's setups (the Table 1 presets, ``--data-root``), 3 seeds, each command in
  its own process, in order. Meant for a GPU: a Table 1 run is 20 levels of 150 epochs.
- ``--smoke``: the same commands at toy scale on a CPU: the bundled digits, the MLP, 2 levels of
  1 epoch, 1 seed, every setup mapped to that one, run inside this process (one PyTorch start).
  The tests call it.
- ``--dry-run``: print the commands only.

Training commands carry ``--resume``: running a script again continues a killed run and skips
finished ones, and a run that another figure already trained (the same folder under ``--work``)
is reused. Every run except a seed's plain IMP run starts from that IMP run's init and rewind
point (``--init-from``), as the paper gives IMP and LRR identical rewind points (A.3).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# Table 1 of the paper as signscope presets (SPEC section 1). ImageNet has no preset because
# signscope has no ImageNet loader (see examples/fig15_imagenet.py).
SETUPS: dict[str, list[str]] = {
    "cifar10": ["--preset", "cifar10-resnet18"],
    "cifar100": ["--preset", "cifar100-resnet50"],
    "tiny-imagenet": ["--preset", "tinyimagenet-resnet50"],
    "vgg16": ["--preset", "cifar10-vgg16"],
}
SEEDS = (0, 1, 2)

SMOKE_LEVELS = 2
SMOKE_TRAIN = [
    "--preset",
    "demo",
    "--model",
    "mlp",
    "--levels",
    str(SMOKE_LEVELS),
    "--epochs",
    "1",
    "--lr-warmup-epochs",
    "0",
    "--rewind-epoch",
    "0",
    "--batch-size",
    "128",
    "--device",
    "cpu",
    "--quiet",
]
# Later options win, so these shrink whatever a figure asks of `signscope neuron`.
SMOKE_NEURON = ["--runs", "1", "--samples", "100", "--steps", "30"]


def parse_args(doc: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="toy scale on a CPU (digits, MLP, 2 levels of 1 epoch, 1 seed), in this process",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("runs/paper"),
        help="folder of the runs, shared by all figure scripts (default: runs/paper)",
    )
    parser.add_argument(
        "--figures",
        type=Path,
        default=None,
        help="folder of the figures and tables (default: WORK/figures)",
    )
    parser.add_argument(
        "--data-root",
        default="data",
        help="folder holding cifar10/cifar100/tiny-imagenet (default: data)",
    )
    parser.add_argument(
        "--seeds", default=None, help="comma-separated seeds (default: 0,1,2; smoke: 0)"
    )
    return parser.parse_args(argv)


class Pipeline:
    """The commands of one figure script, run (or printed) in the order they are asked for."""

    def __init__(self, args: argparse.Namespace):
        self.smoke, self.dry_run = args.smoke, args.dry_run
        self.work = args.work
        self.figures = args.figures or args.work / "figures"
        self.data_root = args.data_root
        if args.seeds is not None:
            self.seeds = tuple(int(s) for s in args.seeds.split(","))
        else:
            self.seeds = (0,) if self.smoke else SEEDS
        self._done: set[tuple[str, ...]] = set()

    # ------------------------------------------------------------------ runs
    def setups(self, *names: str) -> tuple[str, ...]:
        """The setups a figure's panels use; a smoke run has one setup, so it keeps the first."""
        return names[:1] if self.smoke else names

    def run_dir(self, setup: str, name: str, seed: int) -> Path:
        return self.work / ("smoke" if self.smoke else setup) / f"{name}-seed{seed}"

    def level(self, paper_level: int) -> int:
        """A level of the paper's 20-level runs, or the last level of a smoke run."""
        return min(paper_level, SMOKE_LEVELS - 1) if self.smoke else paper_level

    def train(self, setup: str, name: str, seed: int, *options: str) -> Path:
        """``signscope train`` of run ``name`` (its folder name: ``imp``, ``lrr+imp-mask``, ...)."""
        out = self.run_dir(setup, name, seed)
        if self.smoke:
            base = list(SMOKE_TRAIN)
        else:
            base = [*SETUPS[setup], "--data-root", self.data_root]
        argv = ["train", *base, "--seed", str(seed), *options]
        if name != "imp":
            argv += ["--init-from", str(self.train(setup, "imp", seed, "--method", "imp"))]
        self.command([*argv, "--out", str(out), "--resume"])
        return out

    def baselines(self, setup: str, seed: int) -> tuple[Path, Path]:
        """The plain IMP and LRR runs of a seed, which most figures compare against."""
        return (
            self.train(setup, "imp", seed, "--method", "imp"),
            self.train(setup, "lrr", seed, "--method", "lrr"),
        )

    def on_imp_mask(self, setup: str, seed: int) -> list[Path]:
        """IMP, LRR, and LRR with and without BatchNorm rewinding on the IMP mask (Fig 2d, 4)."""
        imp, lrr = self.baselines(setup, seed)
        return [
            imp,
            lrr,
            self.train(setup, "lrr+imp-mask", seed, "--method", "lrr", "--mask-from", str(imp)),
            self.train(
                setup,
                "lrr+bn-rewind+imp-mask",
                seed,
                "--method",
                "lrr",
                "--bn-rewind",
                "--mask-from",
                str(imp),
            ),
        ]

    def with_signs_of(self, setup: str, seed: int, source: Path, source_name: str) -> Path:
        """The run "IMP init + SOURCE mask + SOURCE sign": IMP's rewind magnitudes, with the
        mask and the signs that run ``source`` learnt at every level (Fig 7c,d, 12, 15, 16, 17)."""
        return self.train(
            setup,
            f"imp+{source_name}-mask+{source_name}-sign",
            seed,
            "--method",
            "imp",
            "--signs-from",
            str(source),
        )

    # ------------------------------------------------------------------ outputs
    def accuracy(self, panel: str, runs: Sequence[Path]) -> None:
        """Accuracy vs sparsity (mean and 95% CI over the seeds): a table and the figure."""
        self.command(
            ["acc", *map(str, runs), "--format", "csv", "--out", str(self.figures / panel)]
        )
        self.export(panel, runs, "accuracy")

    def export(
        self, panel: str, runs: Sequence[Path], *figures: str, pair: Sequence[Path] = ()
    ) -> None:
        argv = ["export", *map(str, runs), "--out", str(self.figures / panel)]
        for figure in figures:
            argv += ["--figure", figure]
        if pair:
            argv += ["--pair", *map(str, pair)]
        self.command(argv)

    def flips(self, panel: str, runs: Sequence[Path]) -> None:
        """The sign-flip tables (levels, last_flip, flip_count) as CSV."""
        self.command(
            ["flips", *map(str, runs), "--format", "csv", "--out", str(self.figures / panel)]
        )

    def neuron(self, panel: str, *options: str) -> None:
        argv = ["neuron", *options, "--format", "csv", "--out", str(self.figures / panel)]
        self.command([*argv, *SMOKE_NEURON] if self.smoke else argv)

    # ------------------------------------------------------------------ running
    def command(self, argv: list[str]) -> None:
        key = tuple(argv)
        if key in self._done:  # a run two panels share
            return
        self._done.add(key)
        print("$ signscope " + shlex.join(argv), flush=True)
        if self.dry_run:
            return
        if self.smoke:
            from signscope.cli import main

            status = main(argv)
        else:
            status = subprocess.run([sys.executable, "-m", "signscope", *argv]).returncode
        if status != 0:
            raise SystemExit(f"failed (exit status {status}): signscope {shlex.join(argv)}")
