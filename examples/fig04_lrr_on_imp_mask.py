"""Fig 4: LRR optimises the parameters within the IMP mask better than IMP does (paper Sec. 3,
"LRR is more flexible in optimizing different masks"), on CIFAR-10 (a, b) and CIFAR-100 (c, d),
with and without BatchNorm rewinding.

    python examples/fig04_lrr_on_imp_mask.py --data-root data   # GPU, the paper's setups, 3 seeds
    python examples/fig04_lrr_on_imp_mask.py --smoke             # CPU, toy scale, in seconds
    python examples/fig04_lrr_on_imp_mask.py --dry-run           # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    for setup in p.setups("cifar10", "cifar100"):
        runs = [run for seed in p.seeds for run in p.on_imp_mask(setup, seed)]
        p.accuracy(f"fig04/{setup}", runs)


if __name__ == "__main__":
    main()
