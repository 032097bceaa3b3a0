"""Fill the encoder cache for every six-class clip of the corpora, and time the encoder pass.

    python -m train.encode_corpora --data ~/corpora --encoder whisper-tiny.en --cache CACHE

CACHE is what `sercli train --cache CACHE` is given (the outputs go to CACHE/encoded), so the
head recipes then train in minutes. Prints the clip count, failures and wall time.
"""

import argparse
import os
import sys
import time

from sercli.corpora import SIX_CLASSES, scan
from sercli.encoded import encode_clips
from sercli.models import ENCODERS, encoder_path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--encoder", choices=sorted(ENCODERS), required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--jobs", type=int, default=-1)
    args = ap.parse_args(argv)
    clips = [c for c in scan(args.data).clips if c.label in SIX_CLASSES]
    t = time.time()
    kept, _, failed = encode_clips(
        clips,
        encoder_path(args.encoder),
        tuple(range(1, ENCODERS[args.encoder][2] + 1)),
        jobs=args.jobs,
        cache_dir=os.path.join(args.cache, "encoded"),
    )
    print(f"{args.encoder}: {len(kept)} clips encoded, {len(failed)} failed, {time.time() - t:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
