"""The stream formats written out a second time, word by word as docs/architecture.md (the top's
ports) states them: the independent reference that the one packer (:mod:`spikepack.protocol`:
``input_beats``, ``pack_image``, ``unpack_potentials``) and the native harness's ``pack_inputs``
are tested against. Only tests use it."""

from __future__ import annotations


def input_beats(words, T: int) -> list[int]:
    """The s_axis_in beats of one image: K = 32 // T spike words a beat, input i in beat i // K
    at bits (i % K)*T, zeros beyond N0."""
    K = 32 // T
    words = [int(w) for w in words]
    beats = []
    for start in range(0, len(words), K):
        beat = 0
        for i, w in enumerate(words[start:start + K]):
            assert 0 <= w < (1 << T)
            beat |= w << (i * T)
        beats.append(beat)
    return beats


def pack_image(words, T: int) -> bytes:
    """:func:`input_beats` as the packet's little-endian bytes."""
    return b"".join(b.to_bytes(4, "little") for b in input_beats(words, T))


def unpack_potentials(data: bytes, out_bits: int) -> list[int]:
    """An m_axis_out packet -> one out_bits-wide little-endian signed value a beat."""
    size = out_bits // 8
    return [int.from_bytes(data[i:i + size], "little", signed=True)
            for i in range(0, len(data), size)]
