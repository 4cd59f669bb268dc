"""Fig 12: on CIFAR-100, rewinding only the magnitudes: IMP's rewind-point magnitudes with the
mask and signs learnt by LRR ("IMP init + LRR mask + LRR sign") and with IMP's own learnt
signs ("IMP init + IMP mask + IMP sign"), against IMP and LRR (paper A.4).

    python examples/fig12_magnitudes_vs_signs.py --data-root data   # GPU, paper setup, 3 seeds
    python examples/fig12_magnitudes_vs_signs.py --smoke             # CPU, toy scale, in seconds
    python examples/fig12_magnitudes_vs_signs.py --dry-run           # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    for setup in p.setups("cifar100"):
        runs = []
        for seed in p.seeds:
            imp, lrr = p.baselines(setup, seed)
            runs += [
                imp,
                lrr,
                p.with_signs_of(setup, seed, lrr, "lrr"),
                p.with_signs_of(setup, seed, imp, "imp"),
            ]
        p.accuracy(f"fig12/{setup}", runs)


if __name__ == "__main__":
    main()
