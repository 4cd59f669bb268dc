"""Fig 16: iterative pruning with (a) SynFlow and (b) SNIP instead of magnitude, with weight
rewinding (IMP) and learning rate rewinding (LRR), plus "IMP init + LRR mask + LRR sign" of the
LRR run with that criterion, and the magnitude IMP and LRR as baselines; ResNet18 on CIFAR-10
(paper A.4, "Impact of pruning criteria").

    python examples/fig16_snip_synflow.py --data-root data   # GPU, the paper's setup, 3 seeds
    python examples/fig16_snip_synflow.py --smoke             # CPU, toy scale, in seconds
    python examples/fig16_snip_synflow.py --dry-run           # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    for setup in p.setups("cifar10"):
        for criterion in ("synflow", "snip"):
            runs = []
            for seed in p.seeds:
                imp, lrr = p.baselines(setup, seed)
                crit_lrr = p.train(
                    setup, f"lrr-{criterion}", seed, "--method", "lrr", "--criterion", criterion
                )
                runs += [
                    imp,
                    lrr,
                    crit_lrr,
                    p.train(
                        setup, f"imp-{criterion}", seed, "--method", "imp", "--criterion", criterion
                    ),
                    p.with_signs_of(setup, seed, crit_lrr, f"lrr-{criterion}"),
                ]
            p.accuracy(f"fig16/{setup}-{criterion}", runs)


if __name__ == "__main__":
    main()
