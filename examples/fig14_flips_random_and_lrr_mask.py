"""Fig 14: when signs stop changing and how often they switch, (a, b) with random masks
(IMP-rand vs LRR-rand) and (c, d) on the LRR mask (IMP on the LRR mask vs LRR), on CIFAR-10
and CIFAR-100 (paper A.4, "LRR enables early sign switches for parameter optimization").
Uses the first seed.

    python examples/fig14_flips_random_and_lrr_mask.py --data-root data  # GPU, paper setups
    python examples/fig14_flips_random_and_lrr_mask.py --smoke            # CPU, toy scale
    python examples/fig14_flips_random_and_lrr_mask.py --dry-run          # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    seed = p.seeds[0]
    for setup in p.setups("cifar10", "cifar100"):
        random = [
            p.train(setup, "lrr-rand", seed, "--method", "lrr", "--prune", "random"),
            p.train(setup, "imp-rand", seed, "--method", "imp", "--prune", "random"),
        ]
        p.flips(f"fig14/{setup}-random-mask", random)
        p.export(f"fig14/{setup}-random-mask", random, "last-flip", "flip-count")
        _, lrr = p.baselines(setup, seed)
        on_lrr_mask = [
            lrr,
            p.train(setup, "imp+lrr-mask", seed, "--method", "imp", "--mask-from", str(lrr)),
        ]
        p.flips(f"fig14/{setup}-lrr-mask", on_lrr_mask)
        p.export(f"fig14/{setup}-lrr-mask", on_lrr_mask, "last-flip", "flip-count")


if __name__ == "__main__":
    main()
