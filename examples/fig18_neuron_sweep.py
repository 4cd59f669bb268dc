"""Fig 18: the single hidden neuron with input dimension d = 1, 2, 5, 10: success of IMP and LRR
for each sign of a(0) and w_1(0), 10 runs per case (paper A.4, "Impact of overparameterization
on single hidden neuron network"). Fig 2a is the d = 10 column (examples/fig02_random_masks.py).

    python examples/fig18_neuron_sweep.py           # CPU is enough: about a minute per d
    python examples/fig18_neuron_sweep.py --smoke    # 1 short run per case, in seconds
    python examples/fig18_neuron_sweep.py --dry-run  # print the command
"""

from paper_runs import Pipeline, parse_args


def main(argv=None) -> None:
    p = Pipeline(parse_args(__doc__, argv))
    p.neuron("fig18", "--sweep-d", "1,2,5,10")


if __name__ == "__main__":
    main()
