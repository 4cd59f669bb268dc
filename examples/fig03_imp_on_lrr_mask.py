"""Fig 3: the mask LRR finds is better; IMP improves when it trains on the LRR mask
(paper Sec. 3, "LRR identifies a better mask"), on CIFAR-10 (a, b) and CIFAR-100 (c, d).

Per setup: IMP, LRR, IMP on the LRR mask, and the same with the mask of LRR with BatchNorm
rewinding (the paper's LRR modification, Sec. 3).

    python examples/fig03_imp_on_lrr_mask.py --data-root data   # GPU, the paper's setups, 3 seeds
    python examples/fig03_imp_on_lrr_mask.py --smoke             # CPU, toy scale, in seconds
    python examples/fig03_imp_on_lrr_mask.py --dry-run           # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    for setup in p.setups("cifar10", "cifar100"):
        plain, bn_rewind = [], []
        for seed in p.seeds:
            imp, lrr = p.baselines(setup, seed)
            lrr_bnr = p.train(setup, "lrr+bn-rewind", seed, "--method", "lrr", "--bn-rewind")
            plain += [
                imp,
                lrr,
                p.train(setup, "imp+lrr-mask", seed, "--method", "imp", "--mask-from", str(lrr)),
            ]
            bn_rewind += [
                imp,
                lrr_bnr,
                p.train(
                    setup,
                    "imp+lrr+bn-rewind-mask",
                    seed,
                    "--method",
                    "imp",
                    "--mask-from",
                    str(lrr_bnr),
                ),
            ]
        p.accuracy(f"fig03/{setup}-lrr-mask", plain)
        p.accuracy(f"fig03/{setup}-lrr-bn-rewind-mask", bn_rewind)


if __name__ == "__main__":
    main()
