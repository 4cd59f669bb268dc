"""Fig 13: sign flips from the initial weights to each level, LRR minus IMP (positive: LRR
flipped more), on CIFAR-10, CIFAR-100 and Tiny ImageNet (paper A.4, "Overall sign flips for
LRR vs IMP"). Uses the first seed; the tables hold flips_init of both runs per level.

    python examples/fig13_flips_from_init.py --data-root data   # GPU, the paper's setups
    python examples/fig13_flips_from_init.py --smoke             # CPU, toy scale, in seconds
    python examples/fig13_flips_from_init.py --dry-run           # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    for setup in p.setups("cifar10", "cifar100", "tiny-imagenet"):
        imp, lrr = p.baselines(setup, p.seeds[0])
        p.flips(f"fig13/{setup}", [lrr, imp])
        p.export(f"fig13/{setup}", [lrr, imp], "flips-init-diff", pair=[lrr, imp])


if __name__ == "__main__":
    main()
