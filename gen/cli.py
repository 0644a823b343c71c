"""The ``spikepack`` command. Each subcommand lives in its own module, which defines
``add_arguments(parser)`` and ``main(args) -> int``; it is imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
COMMANDS = {
    "convert": ("spikepack.firmware.convert", "train a ReLU MLP on digits and convert it to a SpikePack model file"),
    "generate": ("spikepack.generate", "write the Verilog (and manifest) of a unit or of the accelerator"),
    "pack": ("spikepack.firmware.pack_cli", "pack a model file into a weight bitstream for a generated accelerator"),
    "inspect": ("spikepack.firmware.inspect_cli", "print the header and sections of a weight bitstream"),
    "run": ("spikepack.run", "simulate inference on the generated RTL through its AXI interfaces"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikepack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            p.set_defaults(_missing=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", False):
        print(f"spikepack {args.command}: not built into this version", file=sys.stderr)
        return 2
    return int(importlib.import_module(args._module).main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
