"""Fig 17: VGG16 with BatchNorm on CIFAR-10: (a) accuracy of IMP, LRR and "IMP init + LRR mask
+ LRR sign"; (b) when signs stop changing, IMP vs LRR (paper A.4, "CIFAR10 on VGG16").

The smoke mode runs the pipeline on the toy setup (VGG16 needs 32x32 images).

    python examples/fig17_vgg16.py --data-root data   # GPU, the paper's setup, 3 seeds
    python examples/fig17_vgg16.py --smoke             # CPU, toy scale, in seconds
    python examples/fig17_vgg16.py --dry-run           # print the commands
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    runs, first = [], None
    for seed in p.seeds:
        imp, lrr = p.baselines("vgg16", seed)
        first = first or [lrr, imp]
        runs += [imp, lrr, p.with_signs_of("vgg16", seed, lrr, "lrr")]
    p.accuracy("fig17/vgg16", runs)
    p.export("fig17/vgg16", first, "last-flip")


if __name__ == "__main__":
    main()
