"""Fig 7: (a, b) 80% of the signs in every layer flipped at 83% sparsity (level 8, density
0.8^8 = 17%) for LRR and IMP; (c, d) "IMP init + LRR mask + LRR sign": every level starts
from the magnitudes of IMP's rewind point with the signs and the mask LRR learnt at that level
(paper Sec. 3, "The interplay of magnitude and signs"). CIFAR-10 (a, c) and CIFAR-100 (b, d).

    python examples/fig07_perturbation_and_signs.py --data-root data  # GPU, paper setups, 3 seeds
    python examples/fig07_perturbation_and_signs.py --smoke            # CPU, toy, perturbs level 1
    python examples/fig07_perturbation_and_signs.py --dry-run          # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    perturb = ["--perturb-signs", "0.8", "--perturb-at-level", str(p.level(8))]
    for setup in p.setups("cifar10", "cifar100"):
        perturbed, signs = [], []
        for seed in p.seeds:
            imp, lrr = p.baselines(setup, seed)
            perturbed += [
                imp,
                lrr,
                p.train(setup, "imp+perturb0.8-L8", seed, "--method", "imp", *perturb),
                p.train(setup, "lrr+perturb0.8-L8", seed, "--method", "lrr", *perturb),
            ]
            signs += [imp, lrr, p.with_signs_of(setup, seed, lrr, "lrr")]
        p.accuracy(f"fig07/{setup}-perturbation", perturbed)
        p.accuracy(f"fig07/{setup}-lrr-signs", signs)


if __name__ == "__main__":
    main()
