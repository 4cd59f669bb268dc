"""Fig 6: 30% of the signs in every layer flipped at 20% sparsity (the start of level 1), for
LRR and IMP, against the unperturbed baselines, on CIFAR-10 (a, b) and CIFAR-100 (c, d)
(paper Sec. 3, "LRR recovers from random sign perturbations").

    python examples/fig06_sign_perturbation.py --data-root data   # GPU, the paper's setups, 3 seeds
    python examples/fig06_sign_perturbation.py --smoke             # CPU, toy scale, in seconds
    python examples/fig06_sign_perturbation.py --dry-run           # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    perturb = ["--perturb-signs", "0.3", "--perturb-at-level", str(p.level(1))]
    for setup in p.setups("cifar10", "cifar100"):
        runs = []
        for seed in p.seeds:
            runs += [
                *p.baselines(setup, seed),
                p.train(setup, "imp+perturb0.3-L1", seed, "--method", "imp", *perturb),
                p.train(setup, "lrr+perturb0.3-L1", seed, "--method", "lrr", *perturb),
            ]
        p.accuracy(f"fig06/{setup}", runs)


if __name__ == "__main__":
    main()
