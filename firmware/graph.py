"""The float network graph: what the ONNX importer produces and the quantizer consumes.

A :class:`FloatNetwork` is a trained float ReLU network, already rewritten into the three layer
kinds the accelerator runs (``../shared/SPEC.md`` section 6): batch normalization folded into
the conv or dense layer before it, average / global-average pooling folded into the linear layer
after it, flatten made implicit (a dense layer after a feature map reads it in (c, y, x) order,
as ONNX ``Flatten`` does). Arrays are float64, feature maps NCHW with batch first.

:meth:`FloatNetwork.forward` is a plain NumPy forward pass used for calibration (the quantizer
needs every layer's ReLU activations); the independent reference for float accuracy is
onnxruntime on the original ONNX file, not this function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

__all__ = ["FloatConv", "FloatMaxPool", "FloatDense", "FloatLayer", "FloatNetwork",
           "GraphError", "conv_output_size"]


class GraphError(ValueError):
    """A float network whose layers do not chain, or whose parameters are malformed."""


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """SPEC section 6: floor((size + 2 padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class FloatConv:
    """Conv2d, no groups, no dilation; ``weight`` (C_out, C_in, K_h, K_w), ``bias`` (C_out,)."""
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    relu: bool = True
    name: str = ""

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(in_shape) != 3:
            raise GraphError(f"conv {self.name!r} needs a C x H x W input, not {in_shape}")
        c, h, w = in_shape
        c_out, c_in, kh, kw = self.weight.shape
        if c != c_in:
            raise GraphError(f"conv {self.name!r} expects {c_in} input channels, gets {c}")
        ho = conv_output_size(h, kh, self.stride[0], self.padding[0])
        wo = conv_output_size(w, kw, self.stride[1], self.padding[1])
        if ho < 1 or wo < 1:
            raise GraphError(f"conv {self.name!r}: a {kh}x{kw} kernel does not fit a {h}x{w} map")
        return (c_out, ho, wo)


@dataclass(frozen=True)
class FloatMaxPool:
    """Non-overlapping max pooling: stride = window, no padding (SPEC section 6)."""
    window: tuple[int, int]
    name: str = ""

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(in_shape) != 3:
            raise GraphError(f"maxpool {self.name!r} needs a C x H x W input, not {in_shape}")
        c, h, w = in_shape
        kh, kw = self.window
        if h < kh or w < kw:
            raise GraphError(f"maxpool {self.name!r}: window {kh}x{kw} larger than map {h}x{w}")
        return (c, h // kh, w // kw)


@dataclass(frozen=True)
class FloatDense:
    """Fully connected: ``weight`` (M, N), ``bias`` (M,); N = C*H*W after a feature map."""
    weight: np.ndarray
    bias: np.ndarray
    relu: bool = True
    name: str = ""

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int]:
        n = int(np.prod(in_shape))
        if self.weight.shape[1] != n:
            raise GraphError(f"dense {self.name!r} expects {self.weight.shape[1]} inputs, gets "
                             f"{n} ({' x '.join(map(str, in_shape))})")
        return (self.weight.shape[0],)


FloatLayer = Union[FloatConv, FloatMaxPool, FloatDense]


@dataclass(frozen=True)
class FloatNetwork:
    """``input_shape`` is (C, H, W) for images or (N,) for feature vectors. Every layer but the
    last is followed by a ReLU (max pooling commutes with it); the last is a dense readout."""
    input_shape: tuple[int, ...]
    layers: tuple[FloatLayer, ...]

    def shapes(self) -> list[tuple[int, ...]]:
        """Input shape of every layer, then the output shape: len(layers) + 1 entries."""
        out = [tuple(self.input_shape)]
        for layer in self.layers:
            out.append(layer.out_shape(out[-1]))
        return out

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Activations after every layer for a batch ``x`` (B, *input_shape)."""
        from numpy.lib.stride_tricks import sliding_window_view
        a = np.asarray(x, dtype=np.float64)
        acts = []
        for layer in self.layers:
            if isinstance(layer, FloatConv):
                ph, pw = layer.padding
                sh, sw = layer.stride
                _, _, kh, kw = layer.weight.shape
                a = np.pad(a, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
                win = sliding_window_view(a, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
                a = np.einsum("bcyxij,ocij->boyx", win, layer.weight) + layer.bias[None, :, None, None]
            elif isinstance(layer, FloatMaxPool):
                kh, kw = layer.window
                b, c, h, w = a.shape
                a = a[:, :, :h // kh * kh, :w // kw * kw].reshape(b, c, h // kh, kh, w // kw, kw)
                a = a.max(axis=(3, 5))
            else:
                a = a.reshape(a.shape[0], -1) @ layer.weight.T + layer.bias
            if getattr(layer, "relu", False):
                a = np.maximum(a, 0.0)
            acts.append(a)
        return acts
