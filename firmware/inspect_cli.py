"""``spikepack inspect FILE.bin [--manifest M | --config C]``: print a weight bitstream's header,
section table and CRC status, and whether it is valid (for that hardware, if one is named).

Exit status 0 if it is valid. An invalid bitstream is bad input like any other: the report still
goes to stdout (it shows where the bitstream breaks), then one line on stderr names the problem
and the exit status is 2 (by :func:`spikepack.cli.main`), as for an unreadable file or a bad
manifest."""

from __future__ import annotations

import zlib
from pathlib import Path

from spikepack.firmware import bitstream as bs
from spikepack.fileio import os_error_reason, read_bytes


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE.bin", help="weight bitstream")
    hardware = parser.add_mutually_exclusive_group()
    hardware.add_argument("--manifest", metavar="MANIFEST",
                          help="also check it against this generator manifest")
    hardware.add_argument("--config", metavar="FILE.toml",
                          help="also check it against this hardware configuration")


def describe(data: bytes, config=None) -> tuple[str, bool]:
    """A human-readable report of ``data`` and whether it parses (against ``config``)."""
    words = bs.words_of(data)
    lines = [f"{len(data)} bytes, {len(words)} words"
             + (f" and {len(data) % 4} stray bytes" if len(data) % 4 else "")]
    lines.append("header:")
    for index, name in enumerate(bs.HEADER_FIELDS):
        if index >= len(words):
            lines.append(f"  {name:<15} (missing)")
            continue
        value = words[index]
        note = ""
        if name == "magic":
            note = ' ("SPKB")' if value == bs.BITSTREAM_MAGIC else " (not a SpikePack bitstream)"
        elif name == "neuron":
            note = {v: f" ({k})" for k, v in bs.NEURON_CODES.items()}.get(value, " (unknown)")
        elif name == "signature" and config is not None:
            note = (" (matches the hardware)" if value == config.signature
                    else f" (the hardware's is 0x{config.signature:08x})")
        shown = f"0x{value:08x}" if name in ("magic", "signature") else str(value)
        lines.append(f"  {name:<15} {shown}{note}")
    lines.append("sections:")
    lines.append(f"  {'type':>4}  {'name':<10} {'words':>8} {'lanes':>6} {'offset':>8}")
    offset = bs.PAYLOAD_OFFSET
    for k in range(len(bs.SECTION_NAMES)):
        base = bs.HEADER_WORDS + bs.SECTION_ENTRY_WORDS * k
        if base + 2 >= len(words):
            lines.append(f"  entry {k}: (missing)")
            break
        kind, count, lanes = words[base:base + 3]
        name = bs.SECTION_NAMES[kind] if kind < len(bs.SECTION_NAMES) else "?"
        lines.append(f"  {kind:>4}  {name:<10} {count:>8} {lanes:>6} {offset:>8}")
        offset += count * lanes
    if words:
        stored, computed = words[-1], zlib.crc32(data[:4 * (len(words) - 1)])
        status = "ok" if stored == computed else "MISMATCH"
        lines.append(f"crc: last word 0x{stored:08x}, CRC-32 of the bytes before it "
                     f"0x{computed:08x}: {status}")
    try:
        model = bs.parse(data, config)
    except bs.BitstreamError as e:
        where = f" (at word {e.word})" if e.word is not None else ""
        code = f", loader error {e.code.name}" if e.code is not None else ""
        lines.append(f"verdict: INVALID: {type(e).__name__}{where}{code}: {e}")
        return "\n".join(lines), False
    shape = "-".join(str(n) for n in model.widths)
    target = " for this hardware" if config is not None else ""
    lines.append(f"verdict: valid{target}: {len(model.layers)} layers ({shape}), T = "
                 f"{model.timesteps}, tau_shift = {model.tau_shift}, {model.weight_bits}-bit "
                 f"weights, {model.neuron}")
    return "\n".join(lines), True


def main(args) -> int:
    from spikepack.cli import CommandError
    from spikepack.firmware.pack_cli import hardware_config
    path = Path(args.file)
    try:
        data = read_bytes(path)
    except OSError as e:
        raise CommandError(f"cannot read {os_error_reason(e)}") from None
    if not data:
        raise CommandError(f"{path}: empty file, not a weight bitstream")
    config = hardware_config(args) if (args.manifest or args.config) else None
    text, ok = describe(data, config)
    print(f"{path}: {text}")
    if not ok:
        error = _parse_error(data, config)
        raise CommandError(f"{path}: invalid bitstream: {error}")
    return 0


def _parse_error(data: bytes, config) -> str:
    try:
        bs.parse(data, config)
    except bs.BitstreamError as e:
        where = f" at word {e.word}" if e.word is not None else ""
        return f"{type(e).__name__}{where}: {e}"
    return "unknown"
