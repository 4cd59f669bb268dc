"""Fig 5: when signs stop changing (top) and how often they switch (bottom), IMP vs LRR, on
CIFAR-10, CIFAR-100 and Tiny ImageNet (paper Sec. 3, "LRR enables early and stable sign
switches"). The histograms use the first seed's runs; the tables hold the counts.

    python examples/fig05_sign_flips.py --data-root data   # GPU, the paper's setups
    python examples/fig05_sign_flips.py --smoke             # CPU, toy scale, in seconds
    python examples/fig05_sign_flips.py --dry-run           # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    for setup in p.setups("cifar10", "cifar100", "tiny-imagenet"):
        imp, lrr = p.baselines(setup, p.seeds[0])
        p.flips(f"fig05/{setup}", [lrr, imp])
        p.export(f"fig05/{setup}", [lrr, imp], "last-flip", "flip-count")


if __name__ == "__main__":
    main()
