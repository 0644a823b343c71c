"""ONNX import: every supported op and rewrite is checked numerically against onnxruntime (the
FloatNetwork's logits must equal ORT's to float tolerance on random inputs), and every refusal
by its message (the node's name and op type, and the rule)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, strategies as st
from onnx import TensorProto as TP, helper, numpy_helper

from spikepack.firmware.graph import FloatConv, FloatDense, FloatMaxPool
from spikepack.firmware.onnx_import import OnnxImportError, load_onnx, onnx_float_predict

H = helper.make_node


def _model(nodes, inits, in_shape, *, batch="N", out="y", opset=17, elem=TP.FLOAT, out_rank=2):
    """A graph with input x (batch, *in_shape) and output ``out``; float initializers stored as
    float32 (float64 when ``elem`` is DOUBLE), integer ones (shapes, axes) as int64."""
    fdt = np.float64 if elem == TP.DOUBLE else np.float32
    tensors = [numpy_helper.from_array(np.asarray(v).astype(
        {"b": bool, "i": np.int64, "u": np.int64}.get(np.asarray(v).dtype.kind, fdt)), k) for k, v in inits.items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", elem, [batch, *in_shape])],
                              [helper.make_tensor_value_info(out, elem, [batch] + [None] * (out_rank - 1))],
                              initializer=tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _save(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _check(model, tmp_path, seed=0, n=8):
    """Import, then compare FloatNetwork.forward's logits with onnxruntime on random inputs."""
    path = _save(model, tmp_path)
    net = load_onnx(path)
    in_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    print(f"input seed {seed}")
    x = np.random.default_rng(seed).standard_normal((n, *in_shape)).astype(np.float32)
    ref = onnx_float_predict(path, x)
    got = net.forward(x.reshape((n,) + tuple(net.input_shape)))[-1]
    assert got.shape == ref.shape
    err = np.abs(got - ref).max()
    assert err <= 1e-5 * max(1.0, np.abs(ref).max()), f"max |forward - ORT| = {err}"
    return net


def _refuse(model, tmp_path, *fragments):
    with pytest.raises(OnnxImportError) as info:
        load_onnx(_save(model, tmp_path))
    msg = str(info.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


def _w(rng, *shape, scale=0.5):
    return rng.standard_normal(shape) * scale


def _cnn(rng, *, conv_attrs=None, pool=("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2])),
         in_shape=(2, 8, 8), c_out=3, bias=True, dense_in=None):
    """Conv -> Relu -> pool -> Flatten -> Gemm (transB) with random parameters."""
    conv_attrs = dict(pads=[1, 1, 1, 1]) if conv_attrs is None else conv_attrs
    inits = {"w1": _w(rng, c_out, in_shape[0], 3, 3)}
    if bias:
        inits["b1"] = _w(rng, c_out)
    nodes = [H("Conv", ["x", "w1"] + (["b1"] if bias else []), ["c1"], name="conv1", **conv_attrs),
             H("Relu", ["c1"], ["r1"], name="relu1")]
    last = "r1"
    if pool is not None:
        nodes.append(H(pool[0], ["r1"], ["p1"], name="pool1", **pool[1]))
        last = "p1"
    nodes += [H("Flatten", [last], ["f"], name="flat"),
              H("Gemm", ["f", "w2", "b2"], ["y"], name="fc", transB=1)]
    inits["w2"] = _w(rng, 4, dense_in)
    inits["b2"] = _w(rng, 4)
    return _model(nodes, inits, in_shape)


# --- supported ops -------------------------------------------------------------------------------

def test_external_data_beside_the_model(tmp_path):
    """A model whose weights live in a separate file (onnx's external data, as large exports
    write them) imports to the same network as the self-contained file; with that file gone,
    one line names it."""
    rng = np.random.default_rng(3)
    model = _cnn(rng, dense_in=3 * 4 * 4)
    inline = load_onnx(_save(model, tmp_path, "inline.onnx"))
    ext = tmp_path / "ext"
    ext.mkdir()
    onnx.save_model(model, ext / "m.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert (ext / "weights.bin").stat().st_size > 0
    net = load_onnx(ext / "m.onnx")
    x = rng.standard_normal((4, 2, 8, 8))
    assert np.array_equal(net.forward(x)[-1], inline.forward(x)[-1])
    (ext / "weights.bin").unlink()
    with pytest.raises(OnnxImportError) as info:
        load_onnx(ext / "m.onnx")
    assert "weights.bin" in str(info.value) and "\n" not in str(info.value), info.value


def test_conv_relu_maxpool_flatten_gemm(tmp_path):
    rng = np.random.default_rng(1)
    net = _check(_cnn(rng, dense_in=3 * 4 * 4), tmp_path)
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [FloatConv, FloatMaxPool, FloatDense]
    assert net.input_shape == (2, 8, 8)
    assert net.layers[0].relu and not net.layers[2].relu
    assert net.layers[0].padding == (1, 1) and net.layers[1].window == (2, 2)
    assert net.layers[0].name == "conv1"


@pytest.mark.parametrize("attrs, out_hw", [
    (dict(strides=[2, 2], pads=[1, 1, 1, 1]), 4),
    (dict(pads=[1, 0, 1, 0]), (8, 6)),
    (dict(auto_pad="SAME_UPPER"), 8),
    (dict(auto_pad="SAME_LOWER", strides=[1, 1]), 8),
    (dict(auto_pad="VALID"), 6),
    (dict(kernel_shape=[3, 3], dilations=[1, 1], group=1), 6),
])
def test_conv_variants(tmp_path, attrs, out_hw):
    rng = np.random.default_rng(2)
    oh, ow = (out_hw, out_hw) if isinstance(out_hw, int) else out_hw
    net = _check(_cnn(rng, conv_attrs=attrs, pool=None, dense_in=3 * oh * ow), tmp_path)
    assert net.shapes()[1] == (3, oh, ow)


def test_conv_without_bias_and_bias_add(tmp_path):
    """A Conv without bias followed by an Add of a per-channel constant (1, C, 1, 1)."""
    rng = np.random.default_rng(3)
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                    H("Add", ["cb", "c"], ["a"], name="bias"),
                    H("Relu", ["a"], ["r"], name="relu"),
                    H("Flatten", ["r"], ["f"]),
                    H("Gemm", ["f", "w2"], ["y"], name="fc")],
                   {"w1": _w(rng, 3, 1, 3, 3), "cb": _w(rng, 1, 3, 1, 1), "w2": _w(rng, 3 * 5 * 5, 4)},
                   (1, 5, 5))
    net = _check(model, tmp_path)
    assert len(net.layers) == 2 and np.abs(net.layers[0].bias).max() > 0


@pytest.mark.parametrize("trans_b, alpha, beta, c_shape", [
    (0, 1.0, 1.0, (4,)), (1, 1.0, 1.0, (1, 4)), (1, 0.5, 2.0, (4,)), (0, 1.5, 0.25, (1,)),
    (1, 1.0, 1.0, None)])
def test_gemm_attributes(tmp_path, trans_b, alpha, beta, c_shape):
    rng = np.random.default_rng(4)
    inits = {"w1": _w(rng, 6, 5) if trans_b else _w(rng, 5, 6), "b1": _w(rng, 6),
             "w2": _w(rng, 4, 6) if trans_b else _w(rng, 6, 4)}
    if c_shape is not None:
        inits["b2"] = _w(rng, *c_shape)
    model = _model([H("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=trans_b),
                    H("Relu", ["h"], ["r"]),
                    H("Gemm", ["r", "w2"] + (["b2"] if c_shape else []), ["y"], name="fc2",
                      transB=trans_b, alpha=alpha, beta=beta)], inits, (5,))
    net = _check(model, tmp_path)
    assert [type(layer) for layer in net.layers] == [FloatDense, FloatDense]
    assert net.layers[1].weight.shape == (4, 6)


@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_add_bias(tmp_path, bias_first):
    rng = np.random.default_rng(5)
    add_in = ["b1", "m"] if bias_first else ["m", "b1"]
    model = _model([H("MatMul", ["x", "w1"], ["m"], name="mm1"), H("Add", add_in, ["a"], name="add1"),
                    H("Relu", ["a"], ["r"]), H("MatMul", ["r", "w2"], ["m2"], name="mm2"),
                    H("Add", ["m2", "b2"], ["y"], name="add2")],
                   {"w1": _w(rng, 7, 5), "b1": _w(rng, 1, 5), "w2": _w(rng, 5, 3), "b2": _w(rng, 3)}, (7,))
    net = _check(model, tmp_path)
    w1 = numpy_helper.to_array(model.graph.initializer[0]).astype(np.float64)
    np.testing.assert_array_equal(net.layers[0].weight, w1.T)


def _bn_inits(rng, prefix, c):
    return {f"{prefix}s": rng.uniform(0.5, 2, c) * rng.choice([-1, 1], c), f"{prefix}b": _w(rng, c),
            f"{prefix}m": _w(rng, c), f"{prefix}v": rng.uniform(0.2, 3, c)}


def _bn(prefix, x, y, name):
    return H("BatchNormalization", [x, f"{prefix}s", f"{prefix}b", f"{prefix}m", f"{prefix}v"], [y],
             name=name, epsilon=1e-3)


def test_batchnorm_folds_into_conv_and_dense(tmp_path):
    rng = np.random.default_rng(6)
    inits = {"w1": _w(rng, 3, 2, 3, 3), "w2": _w(rng, 5, 3 * 3 * 3), "b2": _w(rng, 5),
             "w3": _w(rng, 4, 5), **_bn_inits(rng, "bn1", 3), **_bn_inits(rng, "bn2", 5)}
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv"), _bn("bn1", "c", "n", "bn_conv"),
                    H("Relu", ["n"], ["r"]), H("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                    H("Flatten", ["p"], ["f"]),
                    H("Gemm", ["f", "w2", "b2"], ["h"], name="fc", transB=1), _bn("bn2", "h", "hn", "bn_fc"),
                    H("Relu", ["hn"], ["hr"]), H("Gemm", ["hr", "w3"], ["y"], name="out", transB=1)],
                   inits, (2, 8, 8))
    net = _check(model, tmp_path, n=32)
    assert [type(layer) for layer in net.layers] == [FloatConv, FloatMaxPool, FloatDense, FloatDense]
    # folded: the weights differ from the stored ones by the per-channel BN scale
    s = inits["bn1s"] / np.sqrt(inits["bn1v"] + 1e-3)
    w1 = inits["w1"].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(net.layers[0].weight, w1 * s.astype(np.float32)[:, None, None, None],
                               rtol=1e-6)


@pytest.mark.parametrize("pool_attrs, conv_attrs", [
    (dict(kernel_shape=[2, 2], strides=[2, 2]), dict(pads=[1, 1, 1, 1])),
    (dict(kernel_shape=[2, 2], strides=[2, 2]), dict(strides=[2, 2])),
    (dict(kernel_shape=[3, 3], strides=[1, 1]), dict()),
    (dict(kernel_shape=[3, 2], strides=[2, 1]), dict(strides=[1, 2])),
])
def test_avgpool_folds_into_next_conv(tmp_path, pool_attrs, conv_attrs):
    rng = np.random.default_rng(7)
    (kh, kw), (sh, sw) = pool_attrs["kernel_shape"], pool_attrs["strides"]
    csh, csw = conv_attrs.get("strides", [1, 1])
    pad = conv_attrs.get("pads", [0] * 4)[0]
    hp, wp = (12 - kh) // sh + 1, (12 - kw) // sw + 1
    ho, wo = (hp + 2 * pad - 3) // csh + 1, (wp + 2 * pad - 3) // csw + 1
    model = _model([H("Conv", ["x", "w1", "b1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
                    H("Relu", ["c"], ["r"]),
                    H("AveragePool", ["r"], ["a"], name="avg", **pool_attrs),
                    H("Conv", ["a", "w2", "b2"], ["c2"], name="conv2", **conv_attrs),
                    H("Relu", ["c2"], ["r2"]), H("Flatten", ["r2"], ["f"]),
                    H("MatMul", ["f", "w3"], ["y"], name="out")],
                   {"w1": _w(rng, 3, 2, 3, 3), "b1": _w(rng, 3), "w2": _w(rng, 4, 3, 3, 3),
                    "b2": _w(rng, 4), "w3": _w(rng, 4 * ho * wo, 5)}, (2, 12, 12))
    net = _check(model, tmp_path)
    assert [type(layer) for layer in net.layers] == [FloatConv, FloatConv, FloatDense]
    assert net.layers[1].stride == (csh * sh, csw * sw)


def test_avgpool_folds_into_next_dense(tmp_path):
    rng = np.random.default_rng(8)
    model = _model([H("Conv", ["x", "w1", "b1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("AveragePool", ["r"], ["a"], name="avg", kernel_shape=[2, 3], strides=[2, 2]),
                    H("Flatten", ["a"], ["f"]), H("Gemm", ["f", "w2"], ["y"], name="fc", transB=1)],
                   {"w1": _w(rng, 3, 1, 3, 3), "b1": _w(rng, 3), "w2": _w(rng, 4, 3 * 3 * 2)}, (1, 9, 8))
    net = _check(model, tmp_path)
    assert net.layers[1].weight.shape == (4, 3 * 7 * 6)


@pytest.mark.parametrize("head", ["gap_flatten", "gap_conv1x1", "reducemean", "gap_squeeze"])
def test_global_average_pool(tmp_path, head):
    rng = np.random.default_rng(9)
    inits = {"w1": _w(rng, 3, 1, 3, 3), "b1": _w(rng, 3), "w2": _w(rng, 4, 3)}
    nodes = [H("Conv", ["x", "w1", "b1"], ["c"], name="conv1", pads=[1, 1, 1, 1]), H("Relu", ["c"], ["r"])]
    if head == "gap_flatten":
        nodes += [H("GlobalAveragePool", ["r"], ["g"], name="gap"), H("Flatten", ["g"], ["f"])]
    elif head == "gap_conv1x1":
        inits["wc"], inits["bc"] = _w(rng, 3, 3, 1, 1), _w(rng, 3)
        nodes += [H("GlobalAveragePool", ["r"], ["g"], name="gap"),
                  H("Conv", ["g", "wc", "bc"], ["g2"], name="conv1x1"), H("Relu", ["g2"], ["g3"]),
                  H("Flatten", ["g3"], ["f"])]
    elif head == "reducemean":
        nodes += [H("ReduceMean", ["r"], ["f"], name="mean", axes=[2, 3], keepdims=0)]
    else:
        inits["ax"] = np.array([2, 3])
        nodes += [H("GlobalAveragePool", ["r"], ["g"], name="gap"), H("Squeeze", ["g", "ax"], ["f"])]
    nodes.append(H("Gemm", ["f", "w2"], ["y"], name="fc", transB=1))
    net = _check(_model(nodes, inits, (1, 6, 6)), tmp_path)
    assert isinstance(net.layers[-1], FloatDense)


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3), s=st.integers(1, 3),
       kc=st.integers(1, 3), sc=st.integers(1, 2), pc=st.integers(0, 1), size=st.integers(6, 11))
def test_avgpool_conv_fold_property(tmp_path_factory, seed, k, s, kc, sc, pc, size):
    """Any unpadded average pool, then any conv: folded exactly, or refused (never wrong)."""
    tmp = tmp_path_factory.mktemp("fold")
    rng = np.random.default_rng(seed)
    hp = (size - k) // s + 1
    ho = (hp + 2 * pc - kc) // sc + 1
    if ho < 1:
        return
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("AveragePool", ["r"], ["a"], name="avg", kernel_shape=[k, k], strides=[s, s]),
                    H("Conv", ["a", "w2", "b2"], ["c2"], name="conv2", strides=[sc, sc],
                      pads=[pc] * 4),
                    H("Relu", ["c2"], ["r2"]), H("Flatten", ["r2"], ["f"]),
                    H("Gemm", ["f", "w3"], ["y"], name="fc", transB=1)],
                   {"w1": _w(rng, 2, 1, 1, 1), "w2": _w(rng, 3, 2, kc, kc), "b2": _w(rng, 3),
                    "w3": _w(rng, 2, 3 * ho * ho)}, (1, size, size))
    try:
        _check(model, tmp, seed=seed, n=4)
    except OnnxImportError as e:
        assert pc and (s != k or size % k), f"refused a foldable pool: {e}"
        assert "node 'conv2' (Conv)" in str(e)


def test_noop_nodes(tmp_path):
    """Identity, inference Dropout, Cast to float and transposes that cancel are dropped."""
    rng = np.random.default_rng(10)
    model = _model([H("Cast", ["x"], ["x1"], to=TP.FLOAT), H("Identity", ["x1"], ["x2"]),
                    H("Conv", ["x2", "w1", "b1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
                    H("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]), H("Relu", ["t"], ["r"]),
                    H("Transpose", ["r"], ["t2"], perm=[0, 3, 1, 2]),
                    H("Dropout", ["t2", "ratio", "train"], ["d"], name="drop"),
                    H("Flatten", ["d"], ["f"]), H("Gemm", ["f", "w2"], ["y"], name="fc", transB=1)],
                   {"w1": _w(rng, 3, 2, 3, 3), "b1": _w(rng, 3), "w2": _w(rng, 4, 3 * 4 * 4),
                    "ratio": np.array(0.5), "train": np.array(False)}, (2, 4, 4), opset=13)
    net = _check(model, tmp_path)
    assert [type(layer) for layer in net.layers] == [FloatConv, FloatDense]


def test_weights_through_identity_and_constant_nodes(tmp_path):
    """PyTorch-style Identity on an initializer, and a weight held by a Constant node."""
    rng = np.random.default_rng(16)
    w2 = _w(rng, 3, 6).astype(np.float32)
    model = _model([H("Identity", ["w1raw"], ["w1"], name="shared"),
                    H("Constant", [], ["w2"], value=numpy_helper.from_array(w2)),
                    H("Gemm", ["x", "w1"], ["h"], name="fc1"), H("Relu", ["h"], ["r"]),
                    H("Gemm", ["r", "w2"], ["y"], name="fc2", transB=1)],
                   {"w1raw": _w(rng, 5, 6)}, (5,))
    net = _check(model, tmp_path)
    np.testing.assert_array_equal(net.layers[1].weight, w2.astype(np.float64))


def test_nhwc_flatten_folds_into_dense_weights(tmp_path):
    """Keras / Flax order: NHWC input (one channel: a reshape), and the map transposed to NHWC
    before the flatten; the transpose folds into the dense layer's weight columns."""
    rng = np.random.default_rng(11)
    model = _model([H("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
                    H("Conv", ["xt", "w1", "b1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
                    H("Relu", ["c"], ["r"]), H("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                    H("Transpose", ["p"], ["t"], perm=[0, 2, 3, 1]),
                    H("Reshape", ["t", "shape"], ["f"], name="flat"),
                    H("Gemm", ["f", "w2", "b2"], ["y"], name="fc")],
                   {"w1": _w(rng, 3, 1, 3, 3), "b1": _w(rng, 3), "w2": _w(rng, 4 * 3 * 3, 5), "b2": _w(rng, 5),
                    "shape": np.array([-1, 4 * 3 * 3])}, (8, 6, 1))
    net = _check(model, tmp_path)
    assert net.input_shape == (1, 8, 6)
    w2 = numpy_helper.to_array([t for t in model.graph.initializer if t.name == "w2"][0]).astype(np.float64)
    # weight column of channel c at (y, x) is the NHWC row (y, x, c)
    np.testing.assert_array_equal(net.layers[-1].weight.reshape(5, 3, 4, 3)[:, 2, 1, 0],
                                  w2.reshape(4, 3, 3, 5)[1, 0, 2])


def test_dynamic_batch_reshape(tmp_path):
    """jax2onnx's flatten: the target shape computed from Shape -> Gather -> Concat."""
    rng = np.random.default_rng(12)
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("Shape", ["r"], ["s"]), H("Gather", ["s", "i0"], ["b"], axis=0),
                    H("Concat", ["b", "rest"], ["shape"], axis=0),
                    H("Reshape", ["r", "shape"], ["f"], name="flat"),
                    H("Gemm", ["f", "w2"], ["y"], name="fc")],
                   {"w1": _w(rng, 2, 1, 3, 3), "w2": _w(rng, 2 * 4 * 4, 3), "i0": np.array([0]),
                    "rest": np.array([32])}, (1, 6, 6))
    _check(model, tmp_path)


def test_static_batch_and_input_reshape(tmp_path):
    """A fixed batch of 1 (ORT is run per sample) and a (1, 64) input reshaped to 1 x 8 x 8."""
    rng = np.random.default_rng(13)
    model = _model([H("Reshape", ["x", "s"], ["xi"], name="to_image"),
                    H("Conv", ["xi", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("Flatten", ["r"], ["f"]), H("Gemm", ["f", "w2"], ["y"], name="fc")],
                   {"s": np.array([1, 1, 8, 8]), "w1": _w(rng, 2, 1, 3, 3), "w2": _w(rng, 72, 3)},
                   (64,), batch=1)
    net = _check(model, tmp_path, n=5)
    assert net.input_shape == (1, 8, 8)


def test_softmax_readout_gives_logits(tmp_path):
    """onnx_float_predict returns the readout's logits, not the Softmax the file outputs."""
    import onnxruntime as ort
    rng = np.random.default_rng(14)
    model = _model([H("Gemm", ["x", "w1"], ["h"], name="fc1"), H("Relu", ["h"], ["r"]),
                    H("Gemm", ["r", "w2"], ["z"], name="fc2"), H("Softmax", ["z"], ["y"], axis=1)],
                   {"w1": _w(rng, 5, 6), "w2": _w(rng, 6, 3)}, (5,))
    path = _save(model, tmp_path)
    _check(model, tmp_path)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    logits = onnx_float_predict(path, x)
    (probs,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(logits, probs)


# --- the digits MLP through skl2onnx ------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_mlp():
    from spikepack.firmware.convert import train_float_mlp
    return train_float_mlp((64, 32), seed=0)


@pytest.mark.parametrize("double", [True, False])
def test_sklearn_mlp_through_skl2onnx(tmp_path, digits_mlp, double):
    """skl2onnx's export of the digits MLP imports to the sklearn weights (float64 export:
    exactly; float32 export: exactly the float32 rounding), and ORT's classes match sklearn's."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from spikepack.firmware.convert import PIXEL_MAX
    mlp, split = digits_mlp
    kind = DoubleTensorType if double else FloatTensorType
    options = {id(mlp): {"zipmap": False}} if double else None  # ORT's ZipMap is float only
    path = _save(to_onnx(mlp, initial_types=[("input", kind([None, 64]))], options=options), tmp_path)
    net = load_onnx(path)
    assert net.input_shape == (64,)
    assert [layer.relu for layer in net.layers] == [True, True, False]
    dtype = np.float64 if double else np.float32
    for layer, w, b in zip(net.layers, mlp.coefs_, mlp.intercepts_):
        np.testing.assert_array_equal(layer.weight, w.T.astype(dtype).astype(np.float64))
        np.testing.assert_array_equal(layer.bias, b.astype(dtype).astype(np.float64))
    x = split.x_test / PIXEL_MAX
    logits = onnx_float_predict(path, x)
    np.testing.assert_allclose(net.forward(x)[-1], logits, rtol=1e-5, atol=1e-5)
    label, probs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.astype(dtype)})
    sk = mlp.predict(x)
    assert np.array_equal(logits.argmax(axis=1), sk)
    assert np.array_equal(np.asarray(label).ravel(), sk)
    if double:
        np.testing.assert_allclose(probs, mlp.predict_proba(x), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.train
def test_jax2onnx_patterns(tmp_path):
    """What jax2onnx emits for a Flax NNX network on NHWC input: an input Transpose, SAME
    padding, BatchNormalization, AveragePool, a Transpose before a ReLU, ReduceMean over H and
    W given as an input, Gemm, BatchNormalization on a vector, Dropout with a training input."""
    import jax.numpy as jnp
    from flax import nnx
    from jax2onnx import to_onnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(1, 4, (3, 3), padding="SAME", use_bias=False, rngs=rngs)
            self.bn1 = nnx.BatchNorm(4, use_running_average=True, rngs=rngs)
            self.conv2 = nnx.Conv(4, 6, (3, 3), padding=1, rngs=rngs)
            self.lin = nnx.Linear(6, 5, rngs=rngs)
            self.bn2 = nnx.BatchNorm(5, use_running_average=True, rngs=rngs)
            self.drop = nnx.Dropout(0.5, deterministic=True, rngs=rngs)
            self.out = nnx.Linear(5, 3, rngs=rngs)

        def __call__(self, x):
            x = nnx.relu(self.bn1(self.conv1(x)))
            x = nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
            x = nnx.relu(self.conv2(x))
            x = jnp.mean(x, axis=(1, 2))
            x = self.drop(nnx.relu(self.bn2(self.lin(x))))
            return self.out(x)

    net_jax = Net(nnx.Rngs(0))
    rng = np.random.default_rng(15)
    for bn in (net_jax.bn1, net_jax.bn2):  # non-trivial statistics, so the fold is exercised
        c = bn.mean.value.shape[0]
        bn.mean.value = jnp.asarray(_w(rng, c))
        bn.var.value = jnp.asarray(rng.uniform(0.5, 2, c))
        bn.scale.value = jnp.asarray(rng.uniform(0.5, 2, c))
        bn.bias.value = jnp.asarray(_w(rng, c))
    model = to_onnx(net_jax, [("B", 8, 8, 1)])
    ops = {n.op_type for n in model.graph.node}
    assert {"Transpose", "BatchNormalization", "AveragePool", "ReduceMean", "Dropout"} <= ops
    net = _check(model, tmp_path, n=16)
    assert [type(layer) for layer in net.layers] == [FloatConv, FloatConv, FloatDense, FloatDense]
    x = rng.standard_normal((4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(net.forward(x.reshape(4, 1, 8, 8))[-1], np.asarray(net_jax(x)),
                               rtol=1e-4, atol=1e-4)


# --- refusals -----------------------------------------------------------------------------------

def _mlp_with(rng, middle, inits_extra=None, in_n=5):
    """fc1 -> <middle nodes reading 'h' and writing 'r'> -> fc2."""
    inits = {"w1": _w(rng, in_n, 6), "w2": _w(rng, 6, 3), **(inits_extra or {})}
    return _model([H("Gemm", ["x", "w1"], ["h"], name="fc1"), *middle,
                   H("Gemm", ["r", "w2"], ["y"], name="fc2")], inits, (in_n,))


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "Softmax"])
def test_refuses_non_relu_activation(tmp_path, op):
    rng = np.random.default_rng(20)
    _refuse(_mlp_with(rng, [H(op, ["h"], ["r"], name="act")]), tmp_path,
            f"node 'act' ({op})", "only ReLU")


def test_refuses_unsupported_op(tmp_path):
    rng = np.random.default_rng(21)
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("LRN", ["r"], ["n"], name="norm", size=3), H("Flatten", ["n"], ["f"]),
                    H("Gemm", ["f", "w2"], ["y"], name="fc")],
                   {"w1": _w(rng, 2, 1, 3, 3), "w2": _w(rng, 8, 3)}, (1, 4, 4))
    _refuse(model, tmp_path, "node 'norm' (LRN)", "not supported")


@pytest.mark.parametrize("attrs, fragment", [
    (dict(kernel_shape=[2, 2], strides=[1, 1]), "non-overlapping"),
    (dict(kernel_shape=[3, 3], strides=[2, 2]), "non-overlapping"),
    (dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1]), "no padding"),
    (dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER"), "no padding"),
])
def test_refuses_bad_max_pooling(tmp_path, attrs, fragment):
    rng = np.random.default_rng(22)
    model = _cnn(rng, pool=("MaxPool", attrs), dense_in=27)
    _refuse(model, tmp_path, "node 'pool1' (MaxPool)", fragment)


def test_refuses_padded_average_pool(tmp_path):
    rng = np.random.default_rng(23)
    model = _cnn(rng, pool=("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1])),
                 dense_in=75)
    _refuse(model, tmp_path, "node 'pool1' (AveragePool)", "no padding")


@pytest.mark.parametrize("attrs, fragment", [
    (dict(group=2), "group 2"),
    (dict(dilations=[2, 2]), "dilation"),
    (dict(pads=[1, 1, 0, 0]), "not symmetric"),
    (dict(auto_pad="SAME_UPPER", kernel_shape=[3, 3], strides=[2, 2]), "odd"),
])
def test_refuses_bad_conv(tmp_path, attrs, fragment):
    rng = np.random.default_rng(24)
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv1", **attrs), H("Relu", ["c"], ["r"]),
                    H("Flatten", ["r"], ["f"]), H("Gemm", ["f", "w2"], ["y"], name="fc")],
                   {"w1": _w(rng, 4, 2 // attrs.get("group", 1), 3, 3), "w2": _w(rng, 4, 3)}, (2, 8, 8))
    # (the readout size is irrelevant: the conv is refused first)
    _refuse(model, tmp_path, "node 'conv1' (Conv)", fragment)


def test_refuses_shapes_that_do_not_chain(tmp_path):
    rng = np.random.default_rng(25)
    model = _model([H("Gemm", ["x", "w1"], ["h"], name="fc1"), H("Relu", ["h"], ["r"]),
                    H("Gemm", ["r", "w2"], ["y"], name="fc2")],
                   {"w1": _w(rng, 5, 6), "w2": _w(rng, 7, 3)}, (5,))
    _refuse(model, tmp_path, "node 'fc2' (Gemm)", "expects 7 inputs", "do not chain")


def test_refuses_conv_channel_mismatch(tmp_path):
    rng = np.random.default_rng(26)
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("Conv", ["r", "w2"], ["c2"], name="conv2"), H("Relu", ["c2"], ["r2"]),
                    H("Flatten", ["r2"], ["f"]), H("Gemm", ["f", "w3"], ["y"], name="fc")],
                   {"w1": _w(rng, 3, 1, 3, 3), "w2": _w(rng, 2, 4, 3, 3), "w3": _w(rng, 32, 3)}, (1, 8, 8))
    _refuse(model, tmp_path, "node 'conv2' (Conv)", "4 input channels", "has 3")


def test_refuses_missing_relu(tmp_path):
    rng = np.random.default_rng(27)
    _refuse(_mlp_with(rng, [H("Identity", ["h"], ["r"])]), tmp_path,
            "node 'fc2' (Gemm)", "no ReLU between layer 'fc1'")


def test_refuses_last_layer_not_dense(tmp_path):
    rng = np.random.default_rng(28)
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["y"])],
                   {"w1": _w(rng, 3, 1, 3, 3)}, (1, 6, 6), out_rank=4)
    _refuse(model, tmp_path, "last layer 'conv1' is a conv", "dense")


def test_refuses_relu_after_readout(tmp_path):
    rng = np.random.default_rng(29)
    model = _model([H("Gemm", ["x", "w1"], ["h"], name="fc1"), H("Relu", ["h"], ["y"])],
                   {"w1": _w(rng, 5, 3)}, (5,))
    _refuse(model, tmp_path, "readout 'fc1' is followed by a ReLU")


def test_refuses_skip_connection(tmp_path):
    rng = np.random.default_rng(30)
    model = _model([H("Gemm", ["x", "w1"], ["h"], name="fc1"), H("Relu", ["h"], ["r0"]),
                    H("Gemm", ["r0", "wm"], ["m"], name="fcm"), H("Relu", ["m"], ["rm"]),
                    H("Add", ["rm", "r0"], ["r"], name="skip"),
                    H("Gemm", ["r", "w2"], ["y"], name="fc2")],
                   {"w1": _w(rng, 5, 6), "wm": _w(rng, 6, 6), "w2": _w(rng, 6, 3)}, (5,))
    _refuse(model, tmp_path, "feeds 2 nodes", "only a chain")


def test_refuses_non_constant_weight(tmp_path):
    rng = np.random.default_rng(31)
    model = _model([H("Relu", ["wraw"], ["w1"], name="wrelu"),
                    H("Gemm", ["x", "w1"], ["y"], name="fc1")], {"wraw": _w(rng, 5, 3)}, (5,))
    _refuse(model, tmp_path, "node 'fc1' (Gemm)", "not a constant initializer")


def test_refuses_reordering_input_transpose(tmp_path):
    rng = np.random.default_rng(32)
    model = _model([H("Transpose", ["x"], ["xt"], name="to_nchw", perm=[0, 3, 1, 2]),
                    H("Conv", ["xt", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("Flatten", ["r"], ["f"]), H("Gemm", ["f", "w2"], ["y"], name="fc")],
                   {"w1": _w(rng, 2, 3, 3, 3), "w2": _w(rng, 32, 3)}, (6, 6, 3))
    _refuse(model, tmp_path, "node 'to_nchw' (Transpose)", "NCHW input")


def test_refuses_untransposed_conv_input(tmp_path):
    rng = np.random.default_rng(33)
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("Transpose", ["r"], ["t"], perm=[0, 1, 3, 2]),
                    H("Conv", ["t", "w2"], ["c2"], name="conv2"), H("Relu", ["c2"], ["r2"]),
                    H("Flatten", ["r2"], ["f"]), H("Gemm", ["f", "w3"], ["y"], name="fc")],
                   {"w1": _w(rng, 2, 1, 3, 3), "w2": _w(rng, 2, 2, 1, 1), "w3": _w(rng, 32, 3)}, (1, 6, 6))
    _refuse(model, tmp_path, "node 'conv2' (Conv)", "transposed")


def test_refuses_reshape_that_is_not_a_flatten(tmp_path):
    rng = np.random.default_rng(34)
    model = _model([H("Conv", ["x", "w1"], ["c"], name="conv1"), H("Relu", ["c"], ["r"]),
                    H("Reshape", ["r", "s"], ["f"], name="fold"), H("Flatten", ["f"], ["f2"]),
                    H("Gemm", ["f2", "w2"], ["y"], name="fc")],
                   {"w1": _w(rng, 2, 1, 3, 3), "s": np.array([-1, 4, 2, 4]), "w2": _w(rng, 32, 3)},
                   (1, 6, 6))
    _refuse(model, tmp_path, "node 'fold' (Reshape)", "only a flatten")


def test_refuses_batchnorm_after_relu(tmp_path):
    rng = np.random.default_rng(35)
    model = _mlp_with(rng, [H("Relu", ["h"], ["hr"]), _bn("bn", "hr", "r", "late_bn")],
                      _bn_inits(rng, "bn", 6))
    _refuse(model, tmp_path, "node 'late_bn' (BatchNormalization)", "directly follow")


@pytest.mark.parametrize("node, extra, fragment", [
    (H("Dropout", ["hr", "ratio", "train"], ["r"], name="drop"),
     {"ratio": np.array(0.5), "train": np.array(True)}, "training_mode"),
    (H("Cast", ["hr"], ["r"], name="cast", to=TP.INT32), {}, "casts to ONNX element type 6"),
])
def test_refuses_bad_noops(tmp_path, node, extra, fragment):
    rng = np.random.default_rng(36)
    model = _mlp_with(rng, [H("Relu", ["h"], ["hr"]), node], extra)
    _refuse(model, tmp_path, f"node '{node.name}' ({node.op_type})", fragment)


def test_refuses_missing_file_and_garbage(tmp_path):
    with pytest.raises(OnnxImportError, match="no such file"):
        load_onnx(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx model" * 10)
    with pytest.raises(OnnxImportError, match="not an ONNX model"):
        load_onnx(bad)
    assert issubclass(OnnxImportError, ValueError)
