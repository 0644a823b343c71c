"""``spikepack pack MODEL (--manifest DIR/manifest.json | --config FILE.toml) -o OUT.bin``:
pack a model file (dense or conv layers) into a weight bitstream for one generated accelerator
(``docs/bitstream.md``; a conv layer needs hardware generated with ``conv = true``).

A bad model, manifest or configuration, or a model that does not fit the hardware, is reported
in one line with exit status 2 (by :func:`spikepack.cli.main`); the bitstream is written under a
temporary name and renamed when complete, so it is never left half-written."""

from __future__ import annotations

from pathlib import Path

from spikepack.config import HardwareConfig, load_config
from spikepack.accelerator import load_manifest
from spikepack.firmware.bitstream import pack, parse_stream
from spikepack.fileio import check_directory, os_error_reason, write_files


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file (.npz, from spikepack convert)")
    hardware = parser.add_mutually_exclusive_group(required=True)
    hardware.add_argument("--manifest", metavar="MANIFEST",
                          help="the generator's manifest.json (or its folder) of the target "
                               "accelerator")
    hardware.add_argument("--config", metavar="FILE.toml",
                          help="the target's hardware configuration (instead of a manifest)")
    parser.add_argument("-o", "--output", metavar="OUT.bin", required=True,
                        help="bitstream file to write")
    parser.add_argument("--no-fold", dest="fold", action="store_false",
                        help="keep a first conv layer as it is (default: fold its kernel "
                             "columns into its channels when that saves row tiles and fits, "
                             "docs/bitstream.md 'The first layer'; the hardware then reads the "
                             "folded images: 'spikepack run --model')")


def hardware_config(args) -> HardwareConfig:
    """The target configuration named by ``--manifest`` or ``--config``."""
    if getattr(args, "manifest", None):
        return load_manifest(args.manifest)[1]
    return load_config(args.config)


def main(args) -> int:
    from spikepack.cli import CommandError
    from spikepack.firmware.model import SpikePackModel
    out = Path(args.output)
    try:
        check_directory(out.parent)             # a bad -o fails before any work
    except OSError as e:
        raise CommandError(f"cannot write {os_error_reason(e)}") from None
    config = hardware_config(args)              # ConfigError / ManifestError: exit 2
    model = SpikePackModel.load(args.model)     # ModelFormatError: exit 2
    fold = getattr(args, "fold", True)
    data = pack(model, config, fold=fold)       # BitstreamError (model does not fit): exit 2
    try:
        write_files(out.parent, {out.name: data})
    except OSError as e:
        raise CommandError(f"cannot write {os_error_reason(e)}") from None
    stream = parse_stream(data, config)
    shape = "-".join(str(n) for n in model.widths)
    hardware = stream.header["layer_count"]
    merged = (f" in {hardware} hardware layers (a conv layer with its max pooling is one)"
              if hardware != len(model.layers) else "")
    print(f"wrote {out}: {len(data)} bytes ({len(data) // 4} words), {len(model.layers)} layers "
          f"({shape}){merged}, hardware signature 0x{config.signature:08x}, CRC-32 "
          f"0x{stream.crc:08x}")
    folded = model.input_fold(config) if fold else None
    if folded is not None:
        print(f"first layer folded: the hardware reads each {' x '.join(map(str, folded.in_shape))} "
              f"image as the {' x '.join(map(str, folded.shape))} map of "
              f"firmware.layout.hardware_input ('spikepack run --model {args.model}' folds them)")
    return 0
