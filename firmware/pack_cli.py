"""``spikepack pack MODEL (--manifest DIR/manifest.json | --config FILE.toml) -o OUT.bin``:
pack a model file into a weight bitstream for one generated accelerator."""

from __future__ import annotations

import sys
from pathlib import Path

from spikepack.config import ConfigError, HardwareConfig, load_config
from spikepack.accelerator import ManifestError, load_manifest
from spikepack.firmware.bitstream import BitstreamError, pack, parse_stream


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file (.npz, from spikepack convert)")
    hardware = parser.add_mutually_exclusive_group(required=True)
    hardware.add_argument("--manifest", metavar="MANIFEST",
                          help="the generator's manifest.json of the target accelerator")
    hardware.add_argument("--config", metavar="FILE.toml",
                          help="the target's hardware configuration (instead of a manifest)")
    parser.add_argument("-o", "--output", metavar="OUT.bin", required=True,
                        help="bitstream file to write")


def hardware_config(args) -> HardwareConfig:
    """The target configuration named by ``--manifest`` or ``--config``."""
    if getattr(args, "manifest", None):
        return load_manifest(args.manifest)[1]
    return load_config(args.config)


def main(args) -> int:
    from spikepack.firmware.model import ModelFormatError, SpikePackModel
    try:
        config = hardware_config(args)
        model = SpikePackModel.load(args.model)
        data = pack(model, config)
    except (BitstreamError, ConfigError, ManifestError, ModelFormatError) as e:
        print(f"spikepack pack: {e}", file=sys.stderr)
        return 1
    out = Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as e:
        print(f"spikepack pack: cannot write {out}: {e}", file=sys.stderr)
        return 1
    stream = parse_stream(data, config)
    shape = "-".join(str(n) for n in model.widths)
    print(f"wrote {out}: {len(data)} bytes ({len(data) // 4} words), {len(model.layers)} layers "
          f"({shape}), hardware signature 0x{config.signature:08x}, CRC-32 0x{stream.crc:08x}")
    return 0
