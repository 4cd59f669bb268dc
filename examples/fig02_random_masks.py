"""Fig 2: (a) the single hidden neuron; (b, c) random masks with balanced layerwise sparsity,
IMP-rand vs LRR-rand (with and without BatchNorm rewinding) on CIFAR-10 and CIFAR-100;
(d) LRR on the IMP mask on Tiny ImageNet (paper Sec. 2.3 and 3).

    python examples/fig02_random_masks.py --data-root data   # GPU, the paper's setups, 3 seeds
    python examples/fig02_random_masks.py --smoke             # CPU, toy scale, in seconds
    python examples/fig02_random_masks.py --dry-run           # print the commands

Writes WORK/figures/fig02/*: neuron quadrant table (a), accuracy.png and the accuracy table
per panel (b-d).
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    p.neuron("fig02/a-neuron", "--d", "10")
    for setup in p.setups("cifar10", "cifar100"):
        runs = []
        for seed in p.seeds:
            runs += [
                p.train(setup, "imp-rand", seed, "--method", "imp", "--prune", "random"),
                p.train(setup, "lrr-rand", seed, "--method", "lrr", "--prune", "random"),
                p.train(
                    setup,
                    "lrr-rand+bn-rewind",
                    seed,
                    "--method",
                    "lrr",
                    "--bn-rewind",
                    "--prune",
                    "random",
                ),
            ]
        p.accuracy(f"fig02/{setup}-random-masks", runs)
    for setup in p.setups("tiny-imagenet"):
        runs = [run for seed in p.seeds for run in p.on_imp_mask(setup, seed)]
        p.accuracy(f"fig02/{setup}-lrr-on-imp-mask", runs)


if __name__ == "__main__":
    main()
