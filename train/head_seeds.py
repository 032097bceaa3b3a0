"""Run-to-run spread of a head: the same recipe trained with seeds 0..N-1 on the cached encoder
outputs, each seed's val and test UAR, and the UAR of their averaged probabilities.

    python -m train.head_seeds --data ~/corpora --cache CACHE --recipe whisper-tiny --seeds 5
"""

import sys

import numpy as np

from sercli.metrics import evaluate
from train.head_lab import fit_seed, head_splits, lab_parser, probabilities, recipe_data


def main(argv=None) -> None:
    args = lab_parser(__doc__.split("\n")[0], seeds=5, jobs=1, threads=1).parse_args(argv)
    recipe, labels, splits, _ = head_splits(args)
    data = recipe_data(args, recipe, splits)
    probs = {"val": [], "test": []}
    print("| seed | val UAR | test UAR | val UAR, mean of probabilities so far | test UAR, same |")
    print("|---|---|---|---|---|")
    for seed in range(args.seeds):
        model, _ = fit_seed(data, labels, recipe, seed, args.threads)
        row = [str(seed)]
        ens = []
        for k in probs:
            probs[k].append(probabilities(model, *data[k]))
            y = [c.label for c in data[k][0]]
            row.append(f"{evaluate(y, [labels[i] for i in probs[k][-1].argmax(1)], labels)['uar']:.4f}")
            ens.append(f"{evaluate(y, [labels[i] for i in np.mean(probs[k], 0).argmax(1)], labels)['uar']:.4f}")
        print("| " + " | ".join(row + ens) + " |", flush=True)
    print(f"\nCommand: `python -m train.head_seeds {' '.join(argv or sys.argv[1:])}`")


if __name__ == "__main__":
    main()
