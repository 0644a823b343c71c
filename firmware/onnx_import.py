"""Import a trained float ReLU network from ONNX into a :class:`~spikepack.firmware.graph.FloatNetwork`.

:func:`load_onnx` reads the file with the ``onnx`` package and walks the graph from its one input
along a chain of nodes, rewriting it into the three layer kinds the accelerator runs (SPEC
section 6; the supported subset, the rewrites and the refusals are listed in ``docs/onnx.md``):

* ``Conv`` (2-D, no groups or dilation, symmetric padding) -> :class:`FloatConv`;
  ``Gemm``, and ``MatMul`` with an ``Add`` of a constant as bias -> :class:`FloatDense`;
  ``MaxPool`` with stride = window and no padding -> :class:`FloatMaxPool`;
  ``Relu`` after a linear layer sets its ``relu``.
* ``BatchNormalization`` folds into the conv or dense layer before it; an ``Add`` of a constant
  that is the same at every position of a channel folds into its bias.
* ``AveragePool``, ``GlobalAveragePool`` and ``ReduceMean`` over both spatial axes fold into the
  next linear layer: every window position gets the layer's weight divided by the window size.
* ``Flatten`` / ``Reshape`` to a vector is implicit (a dense layer reads the map in (c, y, x)
  order); a ``Transpose`` before it (NHWC exporters) folds into that dense layer's weight
  columns; transposes that cancel out are dropped; ``Identity``, inference ``Dropout`` and
  ``Cast`` to float are no-ops. Reshapes and transposes before the first layer that keep the
  order of the input's elements only change the network's input shape.
* After the readout (a dense layer with no activation), ``Softmax`` / ``LogSoftmax`` / ``ArgMax``
  and the label plumbing classifier exporters add (``ZipMap``, ``ArrayFeatureExtractor``, ...)
  are ignored: the network's output is the readout's logits.

Anything else is refused with :class:`OnnxImportError`, whose one-line message names the node
(name and op type) and the rule it breaks.

:func:`onnx_float_predict` runs the original file in onnxruntime and returns the readout's
logits: the float reference the converted network is measured against (it is not a forward
pass of ours).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from spikepack.firmware.graph import (FloatConv, FloatDense, FloatMaxPool, FloatNetwork,
                                      GraphError, conv_output_size)

__all__ = ["OnnxImportError", "load_onnx", "import_model", "onnx_float_predict", "SUPPORTED_OPS"]


class OnnxImportError(ValueError):
    """An ONNX file the importer cannot map exactly onto the accelerator's layers."""


#: Ops mapped or rewritten on the layer chain.
SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "MaxPool", "AveragePool",
                 "GlobalAveragePool", "ReduceMean", "BatchNormalization", "Flatten", "Reshape",
                 "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout", "Cast")
#: Ops allowed after the readout: they turn logits into probabilities or labels.
_POSTPROCESS_OPS = {"Softmax", "LogSoftmax", "ArgMax", "Identity", "Cast", "Reshape", "Flatten",
                    "Squeeze", "Unsqueeze", "ZipMap", "ArrayFeatureExtractor"}
#: Ops allowed where they only compute the target shape of a Reshape.
_SHAPE_OPS = {"Shape", "Gather", "Squeeze", "Unsqueeze", "Concat", "Constant", "Cast", "Slice",
              "Identity", "Mul", "Div", "Add", "Sub", "ReduceProd"}
#: Post-processing ops that are also walked on the chain as no-ops or reshapes.
_CHAIN_NOOPS = {"Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}
_ACTIVATIONS = {"Sigmoid", "Tanh", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu",
                "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Mish", "Clip", "ThresholdedRelu",
                "Softmax", "LogSoftmax", "Swish", "Abs", "Exp", "Log", "Erf"}
_FLOAT_TYPES = (1, 11)  # TensorProto.FLOAT, TensorProto.DOUBLE


def _node_label(node) -> str:
    return f"node {node.name or (node.output[0] if node.output else '?')!r} ({node.op_type})"


def _fail(node, rule: str):
    raise OnnxImportError(f"{_node_label(node)}: {rule}")


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _decode(v):
    return v.decode() if isinstance(v, bytes) else v


def _is_memory_order_kept(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    """A transpose that only moves axes of size 1 keeps the elements' order (it is a reshape)."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


@dataclass
class _State:
    """The tensor on the chain. ``cshape`` is its shape in the network's (C, H, W) / (N,) terms;
    the ONNX tensor is that transposed by ``perm`` (actual axis i = canonical axis perm[i]).
    A vector (after a flatten) keeps ``cshape`` of the map it came from and ``order``: the
    canonical flat index of each of its elements (None: the canonical order)."""
    cshape: tuple[int, ...]
    perm: tuple[int, ...]
    vector: bool = False
    order: np.ndarray | None = None
    #: the last linear layer awaits its activation (index into layers), or None
    open_layer: int | None = None
    #: a max pool came after the open layer (ReLU still commutes, a bias or BN no longer does)
    pooled_since_open: bool = False
    #: values known to be >= 0 (after a ReLU)
    nonneg: bool = False
    #: average pools waiting for the next linear layer: (window, stride, input cshape)
    avg: list = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        """The ONNX tensor's per-sample shape."""
        if self.vector:
            return (int(np.prod(self.cshape)),)
        return tuple(self.cshape[p] for p in self.perm)


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_model` finds: the network, and the ONNX names ORT needs."""
    network: FloatNetwork
    input_name: str
    input_dims: tuple  # the ONNX input's dims: int, or str for a symbolic (batch) dim
    logits_name: str
    logits_elem_type: int  # ONNX element type of the logits (FLOAT or DOUBLE)


class _Importer:
    def __init__(self, model):
        import onnx
        from onnx import numpy_helper
        try:
            model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:  # shape inference is a help for Reshape, not a requirement
            pass
        self.graph = g = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.value_shapes: dict[str, tuple] = {}
        self.value_types: dict[str, int] = {}
        for vi in list(g.value_info) + list(g.output) + list(g.input):
            tt = vi.type.tensor_type
            if tt.elem_type:
                self.value_types[vi.name] = tt.elem_type
            if tt.HasField("shape"):
                self.value_shapes[vi.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in tt.shape.dim)
        self.producer = {}
        self.consumers: dict[str, list] = {}
        for node in g.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i, name in enumerate(node.input):
                if name:
                    self.consumers.setdefault(name, []).append((node, i))
        self.used: set[int] = set()  # id() of nodes accounted for
        self._fold_constants()
        self.shape_nodes = self._shape_subgraphs()
        self.layers: list = []

    # --- constants and shape computations -------------------------------------------------------

    def _fold_constants(self):
        from onnx import numpy_helper
        for node in self.graph.node:
            if node.op_type == "Constant":
                a = _attrs(node)
                if "value" in a:
                    value = numpy_helper.to_array(a["value"])
                elif "value_float" in a or "value_int" in a:
                    value = np.array(a.get("value_float", a.get("value_int")))
                elif "value_floats" in a or "value_ints" in a:
                    value = np.array(a.get("value_floats", a.get("value_ints")))
                else:
                    _fail(node, "only numeric Constant values are supported")
                self.consts[node.output[0]] = value
                self.used.add(id(node))
            elif (node.op_type == "Identity" and node.input[0] in self.consts):
                self.consts[node.output[0]] = self.consts[node.input[0]]
                self.used.add(id(node))

    def _shape_subgraphs(self) -> set[int]:
        """Nodes that only compute a Reshape's target shape (e.g. jax2onnx's Shape -> Gather ->
        Concat for a symbolic batch): they read shapes, never values, of the chain's tensors."""
        found: set[int] = set()
        todo = [n.input[1] for n in self.graph.node if n.op_type == "Reshape" and len(n.input) > 1]
        while todo:
            name = todo.pop()
            if name in self.consts or name not in self.producer:
                continue
            node = self.producer[name]
            if id(node) in found or id(node) in self.used:
                continue
            if node.op_type not in _SHAPE_OPS:
                _fail(node, "computes a Reshape's target shape with an op the importer does not "
                            "evaluate")
            found.add(id(node))
            if node.op_type != "Shape":
                todo.extend(i for i in node.input if i)
        self.used |= found
        return found

    def _const(self, node, index: int, what: str, optional: bool = False):
        if index >= len(node.input) or not node.input[index]:
            if optional:
                return None
            _fail(node, f"has no {what}")
        name = node.input[index]
        if name not in self.consts:
            _fail(node, f"{what} {name!r} is not a constant initializer")
        return np.asarray(self.consts[name])

    def _data_consumers(self, name: str) -> list:
        return [(n, i) for n, i in self.consumers.get(name, []) if id(n) not in self.shape_nodes]

    # --- the walk --------------------------------------------------------------------------------

    def run(self) -> ImportResult:
        g = self.graph
        inits = set(self.consts)
        inputs = [i for i in g.input if i.name not in inits]
        if len(inputs) != 1:
            raise OnnxImportError(f"the graph must have one input, it has {len(inputs)} "
                                  f"({', '.join(i.name for i in inputs) or 'none'})")
        inp = inputs[0]
        tt = inp.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES:
            raise OnnxImportError(f"input {inp.name!r} must be float, not ONNX element type "
                                  f"{tt.elem_type}")
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                     for d in tt.shape.dim)
        per_sample = dims[1:]
        if len(dims) not in (2, 4) or not all(isinstance(d, int) and d > 0 for d in per_sample):
            raise OnnxImportError(f"input {inp.name!r} must be (batch, features) or (batch, C, H, W) "
                                  f"with fixed sizes, not {dims}")
        self.batch_dim = dims[0]
        st = _State(cshape=tuple(per_sample), perm=tuple(range(len(per_sample))))
        self.input_shape: tuple | None = None
        cur = inp.name
        while True:
            consumers = self._data_consumers(cur)
            is_output = any(o.name == cur for o in g.output)
            # the readout's logits end the chain where only post-processing reads them
            if self._is_readout(st) and consumers and all(
                    n.op_type in _POSTPROCESS_OPS - _CHAIN_NOOPS for n, _ in consumers) \
                    and self._postprocess_only(cur):
                break
            if not consumers:
                if not is_output:
                    raise OnnxImportError(f"tensor {cur!r} is not a graph output and feeds nothing")
                break
            if len(consumers) > 1:
                names = ", ".join(f"{n.name or n.output[0]!r} ({n.op_type})" for n, _ in consumers)
                _fail(consumers[0][0], f"tensor {cur!r} feeds {len(consumers)} nodes ({names}); "
                                       f"only a chain of layers converts (no branches or skips)")
            node, index = consumers[0]
            if is_output and not self._is_noop(node):
                _fail(node, f"reads {cur!r}, which is also a graph output; only a chain converts")
            if index != 0 and node.op_type not in ("Add", "MatMul"):
                _fail(node, f"takes the network's data as input {index}; expected input 0")
            self.used.add(id(node))
            cur = self._step(node, index, st)
        return self._finish(st, cur, inp.name, dims)

    def _is_readout(self, st: _State) -> bool:
        return (st.open_layer == len(self.layers) - 1 and st.open_layer is not None
                and isinstance(self.layers[-1], FloatDense) and not st.pooled_since_open)

    def _postprocess_only(self, name: str) -> bool:
        """Everything computed from ``name`` is post-processing (probabilities, labels)."""
        todo, seen = [name], set()
        while todo:
            for n, _ in self.consumers.get(todo.pop(), []):
                if id(n) in seen:
                    continue
                if n.op_type not in _POSTPROCESS_OPS:
                    return False
                seen.add(id(n))
                todo.extend(o for o in n.output if o)
        return True

    def _is_noop(self, node) -> bool:
        return node.op_type in ("Identity", "Dropout", "Cast")

    def _freeze_input(self, st: _State, node):
        """The first layer (or pool folded into it) fixes the network's input shape."""
        if self.input_shape is None:
            if st.vector:
                self.input_shape = (int(np.prod(st.cshape)),)
            else:
                self.input_shape = st.cshape

    def _need_map(self, node, st: _State, what: str):
        if st.vector or len(st.cshape) != 3:
            _fail(node, f"{what} needs a C x H x W feature map, gets a vector of "
                        f"{int(np.prod(st.shape))}")
        if st.perm != (0, 1, 2):
            _fail(node, f"{what} reads its input as NCHW, but the tensor here is the feature map "
                        f"transposed by {tuple(p for p in st.perm)} (a Transpose that is not undone)")

    def _close_open(self, node, st: _State):
        """A new linear layer or pool: the open layer must have had its ReLU."""
        if st.open_layer is not None:
            prev = self.layers[st.open_layer]
            _fail(node, f"no ReLU between layer {prev.name!r} and this node; every hidden layer "
                        f"must be followed by a ReLU")

    def _step(self, node, index: int, st: _State) -> str:
        op = node.op_type
        a = _attrs(node)
        if node.domain not in ("", "ai.onnx"):
            _fail(node, f"op domain {node.domain!r} is not supported")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            if op in _ACTIVATIONS:
                _fail(node, f"only ReLU activations convert to SpikePack; {op} is not supported "
                            f"between linear layers")
            _fail(node, f"op {op} is not supported (supported: {', '.join(SUPPORTED_OPS)})")
        for extra in node.output[1:]:
            if extra and (self.consumers.get(extra) or
                          any(o.name == extra for o in self.graph.output)):
                _fail(node, f"its second output {extra!r} is used; only the first is supported")
        handler(node, a, st, index)
        return node.output[0]

    # --- no-ops and shape changes ----------------------------------------------------------------

    def _op_Identity(self, node, a, st, index):
        pass

    def _op_Dropout(self, node, a, st, index):
        training = self._const(node, 2, "training_mode", optional=True)
        if training is not None and bool(np.asarray(training).reshape(-1)[0]):
            _fail(node, "training_mode is true; only inference Dropout (a no-op) converts")

    def _op_Cast(self, node, a, st, index):
        if a.get("to") not in _FLOAT_TYPES:
            _fail(node, f"casts to ONNX element type {a.get('to')}; only casts to float are no-ops")

    def _op_Transpose(self, node, a, st, index):
        rank = len(st.shape) + 1
        perm = tuple(a.get("perm", tuple(reversed(range(rank)))))
        if len(perm) != rank or perm[0] != 0:
            _fail(node, f"perm {perm} moves the batch axis or does not match the rank {rank}")
        p = tuple(q - 1 for q in perm[1:])
        if st.vector:
            return  # a rank-2 transpose that keeps the batch first is the identity
        if not self.layers and not st.avg:
            # before the first layer: allowed only if it is a reshape of the input
            if not _is_memory_order_kept(st.shape, p):
                _fail(node, f"transposes the network input by {perm}, reordering its elements; "
                            f"export the model with an NCHW input")
            st.cshape = tuple(st.shape[q] for q in p)
            st.perm = tuple(range(len(st.cshape)))
            return
        st.perm = tuple(st.perm[q] for q in p)

    def _reshape_target(self, node) -> tuple:
        shape = self.value_shapes.get(node.output[0])
        if shape is None and len(node.input) > 1 and node.input[1] in self.consts:
            shape = tuple(int(v) for v in self.consts[node.input[1]])
        if shape is None:
            _fail(node, "the shape it produces cannot be determined statically")
        return shape

    def _reshape(self, node, st: _State, out_shape: tuple):
        """Common rule for Reshape / Flatten / Squeeze / Unsqueeze: keep the batch axis."""
        n = int(np.prod(st.shape))
        rest = tuple(out_shape[1:])
        if len(rest) == 1 and (rest[0] in (n, -1, None) or not isinstance(rest[0], int)):
            rest = (n,)
        if not all(isinstance(d, int) and d > 0 for d in rest) or int(np.prod(rest)) != n:
            _fail(node, f"reshapes a {' x '.join(map(str, st.shape))} sample to {out_shape[1:]}; "
                        f"only a flatten to a vector (batch axis kept) converts")
        if rest == st.shape:
            return
        if not self.layers and not st.avg:
            st.cshape, st.perm, st.vector = rest, tuple(range(len(rest))), False
            return
        if len(rest) != 1:
            _fail(node, f"reshapes a {' x '.join(map(str, st.shape))} feature map to "
                        f"{' x '.join(map(str, rest))}; only a flatten to a vector converts")
        if not st.vector:
            # the vector lists the actual (transposed) tensor's elements in its order
            idx = np.arange(int(np.prod(st.cshape))).reshape(st.cshape).transpose(st.perm).ravel()
            st.order = None if np.array_equal(idx, np.arange(idx.size)) else idx
            st.vector = True

    def _op_Reshape(self, node, a, st, index):
        shape = self._reshape_target(node)
        if shape and isinstance(shape[0], int) and shape[0] == 0:
            shape = (self.batch_dim,) + tuple(shape[1:])  # 0 copies the batch size
        if len(shape) >= 1 and shape[0] not in (self.batch_dim, -1, None) and not (
                isinstance(shape[0], str) and isinstance(self.batch_dim, str)):
            _fail(node, f"reshapes to {shape}, which does not keep the batch axis first")
        self._reshape(node, st, tuple(shape))

    def _op_Flatten(self, node, a, st, index):
        if a.get("axis", 1) != 1:
            _fail(node, f"axis {a.get('axis')}; only Flatten(axis=1) keeps the batch axis")
        self._reshape(node, st, (self.batch_dim, int(np.prod(st.shape))))

    def _squeeze_axes(self, node, a):
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self._const(node, 1, "axes")
        return axes

    def _op_Squeeze(self, node, a, st, index):
        axes = self._squeeze_axes(node, a)
        full = (self.batch_dim,) + st.shape
        axes = [d for d in range(1, len(full)) if full[d] == 1] if axes is None else \
            [int(x) % len(full) for x in np.ravel(axes)]
        if 0 in axes or any(full[d] != 1 for d in axes):
            _fail(node, f"squeezes axes {axes} of a {full} tensor; only per-sample size-1 axes")
        self._reshape(node, st, tuple(d for i, d in enumerate(full) if i not in axes))

    def _op_Unsqueeze(self, node, a, st, index):
        axes = self._squeeze_axes(node, a)
        if axes is None:
            _fail(node, "has no axes")
        rank = len(st.shape) + 1 + len(np.ravel(axes))
        axes = sorted(int(x) % rank for x in np.ravel(axes))
        if 0 in axes:
            _fail(node, "inserts an axis before the batch axis")
        out = list((self.batch_dim,) + st.shape)
        for ax in axes:
            out.insert(ax, 1)
        self._reshape(node, st, tuple(out))

    # --- activations -----------------------------------------------------------------------------

    def _op_Relu(self, node, a, st, index):
        if st.open_layer is not None:
            self.layers[st.open_layer] = replace(self.layers[st.open_layer], relu=True)
            st.open_layer = None
            st.pooled_since_open = False
        elif not st.nonneg:
            _fail(node, "a ReLU must follow a conv or dense layer (here it would act on the "
                        "network input)")
        st.nonneg = True  # a ReLU on values already >= 0 is the identity

    # --- pooling ---------------------------------------------------------------------------------

    def _pool_attrs(self, node, a, what):
        kernel = tuple(a.get("kernel_shape", ()))
        if len(kernel) != 2:
            _fail(node, f"{what} needs a 2-D kernel_shape, not {kernel}")
        strides = tuple(a.get("strides", (1, 1)))
        pads = tuple(a.get("pads", (0, 0, 0, 0)))
        auto_pad = _decode(a.get("auto_pad", "NOTSET"))
        if auto_pad not in ("NOTSET", "VALID") or any(pads):
            _fail(node, f"padding (pads {pads}, auto_pad {auto_pad}) is not supported; "
                        f"{what} takes no padding")
        if any(d != 1 for d in a.get("dilations", (1, 1))):
            _fail(node, f"dilations {tuple(a['dilations'])} are not supported")
        return kernel, strides

    def _op_MaxPool(self, node, a, st, index):
        self._need_map(node, st, "MaxPool")
        kernel, strides = self._pool_attrs(node, a, "MaxPool")
        if strides != kernel:
            _fail(node, f"strides {strides} differ from kernel_shape {kernel}; only "
                        f"non-overlapping max pooling (stride = window) converts")
        if a.get("storage_order", 0) != 0:
            _fail(node, "storage_order 1 is not supported")
        _, h, w = st.cshape
        if a.get("ceil_mode", 0) and (h % kernel[0] or w % kernel[1]):
            _fail(node, f"ceil_mode on a {h}x{w} map with a {kernel[0]}x{kernel[1]} window "
                        f"would pool partial windows")
        if not self.layers or not isinstance(self.layers[-1], (FloatConv, FloatMaxPool)):
            _fail(node, "max pooling must follow a conv layer")
        if st.avg:
            _fail(node, "max pooling after an average pool does not convert (the average must "
                        "fold into a linear layer)")
        pool = FloatMaxPool(window=kernel, name=node.name or node.output[0])
        try:
            st.cshape = pool.out_shape(st.cshape)
        except GraphError as e:
            _fail(node, str(e))
        self.layers.append(pool)
        if st.open_layer is not None:
            st.pooled_since_open = True  # max commutes with the ReLU that must come next

    def _avg_common(self, node, st: _State, kernel, strides):
        if st.open_layer is not None:
            self._close_open(node, st)
        _, h, w = st.cshape
        if h < kernel[0] or w < kernel[1]:
            _fail(node, f"window {kernel[0]}x{kernel[1]} larger than the {h}x{w} map")
        self._freeze_input(st, node)
        st.avg.append((kernel, strides, st.cshape))
        st.cshape = (st.cshape[0], (h - kernel[0]) // strides[0] + 1, (w - kernel[1]) // strides[1] + 1)

    def _op_AveragePool(self, node, a, st, index):
        self._need_map(node, st, "AveragePool")
        kernel, strides = self._pool_attrs(node, a, "AveragePool")
        _, h, w = st.cshape
        if a.get("ceil_mode", 0) and ((h - kernel[0]) % strides[0] or (w - kernel[1]) % strides[1]):
            _fail(node, "ceil_mode would average partial windows")
        self._avg_common(node, st, kernel, strides)

    def _op_GlobalAveragePool(self, node, a, st, index):
        self._need_map(node, st, "GlobalAveragePool")
        _, h, w = st.cshape
        self._avg_common(node, st, (h, w), (h, w))

    def _op_ReduceMean(self, node, a, st, index):
        if st.vector or len(st.cshape) != 3:
            _fail(node, "ReduceMean converts only as a global average over a feature map's "
                        "H and W")
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self._const(node, 1, "axes")
        rank = len(st.shape) + 1
        axes = sorted({int(x) % rank for x in np.ravel(axes)}) if axes is not None else None
        if axes is None or 0 in axes or {st.perm[x - 1] for x in axes} != {1, 2}:
            _fail(node, f"reduces axes {axes}; only the mean over H and W (a global average "
                        f"pool) converts")
        _, h, w = st.cshape
        keep = a.get("keepdims", 1)
        self._avg_common(node, st, (h, w), (h, w))
        if not keep:
            st.vector, st.order = True, None
            # the remaining axis is the channel axis: its flat order is the canonical one

    # --- linear layers ---------------------------------------------------------------------------

    def _fold_avg_into_conv(self, node, st: _State, weight, stride, padding):
        for kernel, pstride, in_shape in reversed(st.avg):
            _, h, w = in_shape
            hp, wp = (h - kernel[0]) // pstride[0] + 1, (w - kernel[1]) // pstride[1] + 1
            if any(padding) and (pstride != kernel or h % kernel[0] or w % kernel[1]):
                _fail(node, f"a padded conv after a {kernel[0]}x{kernel[1]} average pool with "
                            f"stride {pstride} on a {h}x{w} map does not fold exactly (needs "
                            f"stride = window and a map size divisible by it)")
            o, c, kh, kw = weight.shape
            big = np.zeros((o, c, (kh - 1) * pstride[0] + kernel[0],
                            (kw - 1) * pstride[1] + kernel[1]))
            share = weight / (kernel[0] * kernel[1])
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    big[:, :, i:i + (kh - 1) * pstride[0] + 1:pstride[0],
                        j:j + (kw - 1) * pstride[1] + 1:pstride[1]] += share
            new_stride = (stride[0] * pstride[0], stride[1] * pstride[1])
            new_pad = (padding[0] * pstride[0], padding[1] * pstride[1])
            before = (conv_output_size(hp, kh, stride[0], padding[0]),
                      conv_output_size(wp, kw, stride[1], padding[1]))
            after = (conv_output_size(h, big.shape[2], new_stride[0], new_pad[0]),
                     conv_output_size(w, big.shape[3], new_stride[1], new_pad[1]))
            if before != after:
                _fail(node, f"folding the average pool changes the output size {before} to {after}")
            weight, stride, padding = big, new_stride, new_pad
        st.avg.clear()
        return weight, stride, padding

    def _fold_avg_into_dense(self, st: _State, weight):
        for kernel, pstride, in_shape in reversed(st.avg):
            c, h, w = in_shape
            hp, wp = (h - kernel[0]) // pstride[0] + 1, (w - kernel[1]) // pstride[1] + 1
            wmap = weight.reshape(weight.shape[0], c, hp, wp) / (kernel[0] * kernel[1])
            big = np.zeros((weight.shape[0], c, h, w))
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    big[:, :, i:i + (hp - 1) * pstride[0] + 1:pstride[0],
                        j:j + (wp - 1) * pstride[1] + 1:pstride[1]] += wmap
            weight = big.reshape(weight.shape[0], -1)
        st.avg.clear()
        return weight

    def _op_Conv(self, node, a, st, index):
        self._close_open(node, st)
        self._need_map(node, st, "Conv")
        weight = self._const(node, 1, "weight").astype(np.float64)
        if weight.ndim != 4:
            _fail(node, f"only 2-D convolutions convert (weight shape {weight.shape})")
        bias = self._const(node, 2, "bias", optional=True)
        bias = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64).reshape(-1)
        if bias.shape != (weight.shape[0],):
            _fail(node, f"bias has {bias.size} values for {weight.shape[0]} output channels")
        if a.get("group", 1) != 1:
            _fail(node, f"group {a['group']}: grouped or depthwise convolutions are not supported")
        if any(d != 1 for d in a.get("dilations", (1, 1))):
            _fail(node, f"dilations {tuple(a['dilations'])} are not supported (no dilation)")
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != weight.shape[2:]:
            _fail(node, f"kernel_shape {tuple(a['kernel_shape'])} does not match the weight "
                        f"{weight.shape[2:]}")
        c, h, w = st.cshape
        if weight.shape[1] != c:
            _fail(node, f"weight expects {weight.shape[1]} input channels, the input has {c} "
                        f"(shapes do not chain)")
        stride = tuple(int(s) for s in a.get("strides", (1, 1)))
        auto_pad = _decode(a.get("auto_pad", "NOTSET"))
        kh, kw = weight.shape[2:]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            padding = []
            for size, k, s, ax in ((h, kh, stride[0], "H"), (w, kw, stride[1], "W")):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                if total % 2:
                    _fail(node, f"auto_pad {auto_pad} pads {ax} by {total} (odd: not symmetric)")
                padding.append(total // 2)
            padding = tuple(padding)
        elif auto_pad in ("NOTSET", "VALID"):
            pads = tuple(int(p) for p in a.get("pads", (0, 0, 0, 0)))
            if auto_pad == "VALID":
                pads = (0, 0, 0, 0)
            if pads[0] != pads[2] or pads[1] != pads[3]:
                _fail(node, f"pads {pads} are not symmetric per axis")
            padding = (pads[0], pads[1])
        else:
            _fail(node, f"auto_pad {auto_pad} is not supported")
        self._freeze_input(st, node)
        if st.avg:
            weight, stride, padding = self._fold_avg_into_conv(node, st, weight, stride, padding)
        layer = FloatConv(weight=weight, bias=bias, stride=stride, padding=padding, relu=False,
                          name=node.name or node.output[0])
        self._append_linear(node, st, layer)

    def _op_Gemm(self, node, a, st, index):
        self._close_open(node, st)
        if a.get("transA", 0):
            _fail(node, "transA = 1 is not supported (the data must be input A, untransposed)")
        weight = self._const(node, 1, "weight (input B)").astype(np.float64)
        if weight.ndim != 2:
            _fail(node, f"weight has shape {weight.shape}, not 2-D")
        weight = (weight if a.get("transB", 0) else weight.T) * float(a.get("alpha", 1.0))
        bias = self._const(node, 2, "bias (input C)", optional=True)
        m = weight.shape[0]
        if bias is None:
            bias = np.zeros(m)
        else:
            bias = np.asarray(bias, dtype=np.float64) * float(a.get("beta", 1.0))
            if bias.size == 1:
                bias = np.full(m, float(bias.reshape(-1)[0]))
            elif bias.shape in ((m,), (1, m)):
                bias = bias.reshape(m)
            else:
                _fail(node, f"bias C of shape {bias.shape} is not per output ({m})")
        self._dense(node, st, weight, bias)

    def _op_MatMul(self, node, a, st, index):
        self._close_open(node, st)
        if index != 0:
            _fail(node, "the data must be the first MatMul input (x @ W)")
        weight = self._const(node, 1, "weight (input B)").astype(np.float64)
        if weight.ndim != 2:
            _fail(node, f"weight has shape {weight.shape}, not 2-D")
        self._dense(node, st, weight.T, np.zeros(weight.shape[1]))

    def _dense(self, node, st: _State, weight, bias):
        if not st.vector and len(st.shape) != 1:
            _fail(node, f"needs a (batch, features) input, gets a (batch, "
                        f"{', '.join(map(str, st.shape))}) tensor; add a Flatten")
        n = int(np.prod(st.shape))
        if weight.shape[1] != n:
            _fail(node, f"weight expects {weight.shape[1]} inputs, the input has {n} "
                        f"(shapes do not chain)")
        if st.vector and st.order is not None:
            canon = np.zeros_like(weight)
            canon[:, st.order] = weight
            weight = canon
        self._freeze_input(st, node)
        if st.avg:
            weight = self._fold_avg_into_dense(st, weight)
        layer = FloatDense(weight=weight, bias=bias, relu=False, name=node.name or node.output[0])
        self._append_linear(node, st, layer)

    def _append_linear(self, node, st: _State, layer):
        self.layers.append(layer)
        st.open_layer = len(self.layers) - 1
        st.pooled_since_open = False
        st.nonneg = False
        try:
            shapes = FloatNetwork(self.input_shape, tuple(self.layers)).shapes()
        except GraphError as e:
            _fail(node, f"shapes do not chain: {e}")
        st.cshape = shapes[-1]
        st.perm = tuple(range(len(st.cshape)))
        st.vector, st.order = False, None

    # --- per-channel affine ops that fold into the open layer -------------------------------------

    def _open_for_fold(self, node, st: _State, what: str):
        if st.open_layer is None or st.pooled_since_open or st.avg:
            _fail(node, f"{what} must directly follow a conv or dense layer (before its ReLU and "
                        f"any pooling) to fold into it")
        return self.layers[st.open_layer]

    def _per_channel(self, node, st: _State, value: np.ndarray, what: str) -> np.ndarray:
        """``value`` broadcast against the actual tensor, as one number per canonical channel."""
        full_shape = (1,) + st.shape
        try:
            full = np.broadcast_to(np.asarray(value, dtype=np.float64), full_shape)[0]
        except ValueError:
            _fail(node, f"{what} of shape {np.shape(value)} does not broadcast to the "
                        f"(batch, {', '.join(map(str, st.shape))}) tensor")
        if st.vector:  # a flattened map: put the elements back in canonical order
            canon = np.empty(full.size)
            canon[np.arange(full.size) if st.order is None else st.order] = full
            canon = canon.reshape(st.cshape)
        else:
            canon = full.transpose(np.argsort(st.perm))
        per = canon.reshape(canon.shape[0], -1)
        if not np.all(per == per[:, :1]):
            _fail(node, f"{what} differs across positions of a channel; only a per-channel "
                        f"constant folds into the layer's bias")
        return per[:, 0].copy()

    def _op_Add(self, node, a, st, index):
        other = node.input[1 - index]
        if other not in self.consts:
            _fail(node, "adds two computed tensors (a skip connection?); only a constant bias "
                        "converts")
        layer = self._open_for_fold(node, st, "a bias Add")
        b = self._per_channel(node, st, self.consts[other], "the added constant")
        out_shape = np.broadcast_shapes(np.shape(self.consts[other]), (1,) + st.shape)
        if tuple(out_shape[1:]) != st.shape:
            _fail(node, f"the added constant of shape {np.shape(self.consts[other])} changes the "
                        f"tensor's shape")
        self.layers[st.open_layer] = replace(layer, bias=layer.bias + b)

    def _op_BatchNormalization(self, node, a, st, index):
        if a.get("training_mode", 0):
            _fail(node, "training_mode = 1; only inference batch normalization folds")
        layer = self._open_for_fold(node, st, "BatchNormalization")
        if st.vector:
            _fail(node, "normalizes a flattened feature map; it folds only before the flatten")
        if st.perm[0] != 0:
            _fail(node, "normalizes axis 1 of a transposed feature map, which is not its channel "
                        "axis")
        scale, shift, mean, var = (self._const(node, i, what).astype(np.float64).reshape(-1)
                                   for i, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        out = layer.weight.shape[0]
        if not all(v.size == out for v in (scale, shift, mean, var)):
            _fail(node, f"parameters do not have one value per channel ({out})")
        s = scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        weight = layer.weight * s.reshape((-1,) + (1,) * (layer.weight.ndim - 1))
        self.layers[st.open_layer] = replace(layer, weight=weight,
                                             bias=(layer.bias - mean) * s + shift)

    # --- the end ---------------------------------------------------------------------------------

    def _finish(self, st: _State, cur: str, input_name: str, dims) -> ImportResult:
        if not self.layers:
            raise OnnxImportError("the graph has no conv or dense layer")
        last = self.layers[-1]
        if st.avg:
            raise OnnxImportError("the graph ends in an average pool; it must end in a dense "
                                  "readout")
        if not isinstance(last, FloatDense):
            raise OnnxImportError(f"the last layer {last.name!r} is a "
                                  f"{type(last).__name__[5:].lower()}; the readout must be a "
                                  f"dense layer")
        if last.relu or st.open_layer is None:
            raise OnnxImportError(f"the readout {last.name!r} is followed by a ReLU; the readout is "
                                  f"a dense layer read out as potentials (logits)")
        # every node must be on the chain, compute a shape, or post-process the logits
        todo = [cur]
        while todo:
            for n, _ in self.consumers.get(todo.pop(), []):
                if id(n) in self.used:
                    continue
                if n.op_type not in _POSTPROCESS_OPS:
                    _fail(n, "after the readout only Softmax / ArgMax / label plumbing is "
                             "allowed")
                self.used.add(id(n))
                todo.extend(o for o in n.output if o)
        for n in self.graph.node:
            if id(n) not in self.used:
                _fail(n, "is not on the chain of layers from the input to the readout")
        net = FloatNetwork(input_shape=tuple(self.input_shape), layers=tuple(self.layers))
        try:
            net.shapes()
        except GraphError as e:
            raise OnnxImportError(f"shapes do not chain: {e}") from None
        elem = self.value_types.get(cur, self.value_types.get(input_name, 1))
        return ImportResult(net, input_name, tuple(dims), cur, elem)


def _read(path):
    """``onnx.load`` on the bytes of :func:`spikepack.fileio.read_bytes` (a FIFO read that a
    signal interrupts), in the format the extension names, external data from beside it."""
    import io
    import os

    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    from spikepack.fileio import read_bytes
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise OnnxImportError(f"{path}: no such file") from None
    except OSError as e:
        raise OnnxImportError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        fmt = onnx.serialization.registry.get_format_from_file_extension(
            os.path.splitext(str(path))[1])
        model = onnx.load_model(io.BytesIO(data), format=fmt, load_external_data=False)
    except Exception as e:
        raise OnnxImportError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    try:
        load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
    except Exception as e:               # onnx checks each location, then opens it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"{path}: cannot read its external data ({first})") from None
    return model


def import_model(model) -> ImportResult:
    """Import an ``onnx.ModelProto``; see :func:`load_onnx`."""
    return _Importer(model).run()


def load_onnx(path: str | Path) -> FloatNetwork:
    """The float network in the ONNX file at ``path``, rewritten into conv / max-pool / dense
    layers. Raises :class:`OnnxImportError` (one line: the node and the rule) if it does not
    convert exactly."""
    return import_model(_read(path)).network


def onnx_float_predict(path: str | Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime's logits (the readout's output, before any Softmax) for the batch ``x``.

    ``x`` is (B, *network.input_shape) or (B, *the ONNX input's shape); the two hold the same
    elements in the same order (the importer checks that), so it is reshaped to the latter.
    A model with a fixed batch size is run in chunks of that size. Returns float64 (B, classes).
    """
    import onnx
    import onnxruntime as ort
    model = _read(path)
    info = import_model(model)
    if info.logits_name not in [o.name for o in model.graph.output]:
        model.graph.output.append(onnx.helper.make_tensor_value_info(
            info.logits_name, info.logits_elem_type, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # exporters' stale value_info shapes only warn
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed_type = session.get_inputs()[0].type
    dtype = np.float64 if "double" in feed_type else np.float32
    x = np.asarray(x)
    per_sample = tuple(info.input_dims[1:])
    if x.ndim < 1 or int(np.prod(x.shape[1:])) != int(np.prod(per_sample)):
        raise ValueError(f"x of shape {x.shape} does not hold (B, {', '.join(map(str, per_sample))}) "
                         f"samples")
    x = x.reshape((x.shape[0],) + per_sample).astype(dtype)
    chunk = info.input_dims[0] if isinstance(info.input_dims[0], int) and info.input_dims[0] > 0 \
        else max(1, x.shape[0])
    out = []
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk]
        short = chunk - part.shape[0]
        if short:
            part = np.concatenate([part, np.zeros((short,) + per_sample, dtype)])
        (y,) = session.run([info.logits_name], {info.input_name: part})
        out.append(np.asarray(y)[:chunk - short])
    if not out:
        return np.zeros((0, info.network.layers[-1].weight.shape[0]))
    return np.concatenate(out).astype(np.float64).reshape(x.shape[0], -1)
