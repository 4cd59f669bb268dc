"""Fig 15: ResNet50 on ImageNet: (a) accuracy of IMP, LRR and "IMP init + LRR mask + LRR sign";
(b) when signs stop changing (paper A.4, "LRR enables early sign switches on ImageNet").

ImageNet is streamed from DATA_ROOT/imagenet/{train,val}/<wnid>/*.JPEG
(trainers/datasets/imagenet.py, the ImageFolder layout of the PyTorch ImageNet example), with
the ImageNet row of Table 1 as SPEC section 1 gives it (90 epochs, step-warmup, rewind epoch
10, weight decay 1e-4; the preset imagenet-resnet50). The paper's appendix describes another
ImageNet schedule (A.3 (iii): a constant 0.01 during warmup, then 0.1 divided by 10 every 30
epochs); --paper-schedule trains with that one (`signscope train --schedule imagenet-step`).
--dry-run prints the commands; --smoke runs the same pipeline on the toy setup.

    python examples/fig15_imagenet.py --dry-run   # print the commands
    python examples/fig15_imagenet.py --smoke     # CPU, toy scale, in seconds
"""

import sys

import paper_runs
from paper_runs import Pipeline, parse_args

paper_runs.SETUPS["imagenet"] = [
    "--model",
    "resnet50",
    "--dataset",
    "imagenet",
    "--levels",
    "20",
    "--epochs",
    "90",
    "--lr",
    "0.1",
    "--lr-warmup-epochs",
    "10",
    "--schedule",
    "step-warmup",
    "--rewind-epoch",
    "10",
    "--batch-size",
    "256",
    "--weight-decay",
    "1e-4",
    "--momentum",
    "0.9",
]


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--paper-schedule" in argv:
        argv.remove("--paper-schedule")
        setup = paper_runs.SETUPS["imagenet"]
        setup[setup.index("--schedule") + 1] = "imagenet-step"
    p = Pipeline(parse_args(__doc__, argv))
    runs = []
    for seed in p.seeds:
        imp, lrr = p.baselines("imagenet", seed)
        runs += [imp, lrr, p.with_signs_of("imagenet", seed, lrr, "lrr")]
    p.accuracy("fig15/imagenet", runs)
    p.export("fig15/imagenet", runs[1::-1], "last-flip")


if __name__ == "__main__":
    main()
