"""The golden model's conv, pooling and flatten (SPEC section 6), checked against the dense layer
and against independent loop implementations written here."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spikepack.sim import golden as g

T_S = st.integers(1, g.MAX_T)
K_S = st.sampled_from(g.TAU_SHIFTS)


# --- independent references (plain loops, Python integers) -------------------------------------

def ref_pad(z, p_h, p_w):
    """Zero borders by hand: a new array with the map copied into its middle."""
    *lead, H, W = z.shape
    out = np.zeros((*lead, H + 2 * p_h, W + 2 * p_w), dtype=np.int64)
    out[..., p_h:p_h + H, p_w:p_w + W] = z
    return out


def im2col(z, K_h, K_w, stride, padding):
    """Patches of a batch of maps (B, C, H, W): (B, H_out*W_out, C*K_h*K_w), each patch in
    (c, i, j) order, the positions row by row; zero outside the map."""
    (s_h, s_w), (p_h, p_w) = stride, padding
    B, C, H, W = z.shape
    H_out = (H + 2 * p_h - K_h) // s_h + 1
    W_out = (W + 2 * p_w - K_w) // s_w + 1
    out = np.zeros((B, H_out * W_out, C * K_h * K_w), dtype=np.int64)
    for b in range(B):
        for y in range(H_out):
            for x in range(W_out):
                col = 0
                for c in range(C):
                    for i in range(K_h):
                        for j in range(K_w):
                            yy, xx = y * s_h + i - p_h, x * s_w + j - p_w
                            if 0 <= yy < H and 0 <= xx < W:
                                out[b, y * W_out + x, col] = z[b, c, yy, xx]
                            col += 1
    return out, (H_out, W_out)


def ref_maxpool(a, k_h, k_w):
    """Max over each non-overlapping window, one window at a time."""
    B, C, H, W = a.shape
    out = np.zeros((B, C, H // k_h, W // k_w), dtype=np.int64)
    for b in range(B):
        for c in range(C):
            for y in range(H // k_h):
                for x in range(W // k_w):
                    out[b, c, y, x] = max(int(a[b, c, y * k_h + i, x * k_w + j])
                                          for i in range(k_h) for j in range(k_w))
    return out


def ref_flatten(z):
    """(B, C, H, W) -> (B, C*H*W) by listing channel, row, column in that order."""
    B, C, H, W = z.shape
    return np.array([[z[b, c, y, x] for c in range(C) for y in range(H) for x in range(W)]
                     for b in range(B)], dtype=np.int64)


# --- random conv layers ------------------------------------------------------------------------

@st.composite
def conv_cases(draw, max_c=3, max_hw=6):
    T, k, bw = draw(T_S), draw(K_S), draw(st.integers(2, 16))
    C, O = draw(st.integers(1, max_c)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    p_h, p_w = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    K_h = draw(st.integers(1, min(4, H + 2 * p_h)))
    K_w = draw(st.integers(1, min(4, W + 2 * p_w)))
    s_h, s_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    B = draw(st.integers(1, 2))
    lo, hi = -(1 << (bw - 1)), (1 << (bw - 1)) - 1
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mode_w = draw(st.sampled_from(["random", "min", "max"]))
    shape = (O, C, K_h, K_w)
    w = {"random": lambda: rng.integers(lo, hi + 1, shape), "min": lambda: np.full(shape, lo),
         "max": lambda: np.full(shape, hi)}[mode_w]()
    mode_z = draw(st.sampled_from(["random", "all_on", "zero", "sparse"]))
    zs = (B, C, H, W)
    z = {"random": lambda: rng.integers(0, 1 << T, zs), "all_on": lambda: np.full(zs, (1 << T) - 1),
         "zero": lambda: np.zeros(zs, dtype=np.int64),
         "sparse": lambda: rng.integers(0, 1 << T, zs) * (rng.random(zs) < 0.2)}[mode_z]()
    P = g.packed_max(T, k)
    b_mag = draw(st.integers(0, 1 << 20))
    b = rng.integers(-b_mag, b_mag + 1, O)
    theta_mode = draw(st.sampled_from(["random", "one", "max"]))
    theta_hi = draw(st.integers(1, 1 << 20))
    theta = {"random": lambda: rng.integers(1, theta_hi + 1, O), "one": lambda: np.ones(O, int),
             "max": lambda: np.full(O, theta_hi)}[theta_mode]()
    fan_in = C * K_h * K_w
    assume(fan_in * (1 << (bw - 1)) * P + b_mag < g.INT64_LIMIT)
    assume((theta_hi << (k * (T - 1))) < g.INT64_LIMIT)
    assume(4 * (fan_in * (1 << (bw - 1)) + b_mag + theta_hi) < g.INT64_LIMIT)
    return dict(T=T, k=k, z=z, w=w, b=b, theta=theta, stride=(s_h, s_w), padding=(p_h, p_w))


@settings(max_examples=150, deadline=None)
@given(case=conv_cases())
def test_conv_equals_dense_over_im2col_patches(case):
    T, k, z, w, b, theta = (case[n] for n in ("T", "k", "z", "w", "b", "theta"))
    stride, padding = case["stride"], case["padding"]
    O, C, K_h, K_w = w.shape
    patches, (H_out, W_out) = im2col(z, K_h, K_w, stride, padding)
    w2 = w.reshape(O, -1)                                   # (c, i, j) order, as the patches
    assert g.conv_output_shape(z.shape[1:], w.shape, stride, padding) == (O, H_out, W_out)

    def as_map(a):                                          # (B, positions, O) -> (B, O, H, W)
        return a.reshape(a.shape[0], H_out, W_out, O).transpose(0, 3, 1, 2)

    v = g.conv_potential(z, w, b, T, k, stride, padding)
    assert v.shape == (len(z), O, H_out, W_out) and v.dtype == np.int64
    np.testing.assert_array_equal(v, as_map(g.global_potential(patches, w2, b, T, k)))
    np.testing.assert_array_equal(g.conv_potential_serial(z, w, b, T, k, stride, padding), v)
    np.testing.assert_array_equal(g.spikepack_conv(z, w, b, theta, T, k, stride, padding),
                                  as_map(g.spikepack_layer(patches, w2, b, theta, T, k)))
    np.testing.assert_array_equal(g.lif_conv(z, w, b, theta, T, k, stride, padding),
                                  as_map(g.lif_layer(patches, w2, b, theta, T, k)))
    currents = g.step_currents(patches, w2, T)             # (B, positions, O, T)
    np.testing.assert_array_equal(g.conv_step_currents(z, w, T, stride, padding),
                                  currents.reshape(len(z), H_out, W_out, O, T)
                                  .transpose(0, 3, 1, 2, 4))


@settings(max_examples=80, deadline=None)
@given(T=T_S, k=K_S, data=st.data())
def test_1x1_conv_on_1x1_map_is_a_dense_layer(T, k, data):
    N, M, S = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = rng.integers(-128, 128, (M, N))
    b = rng.integers(-5000, 5000, M)
    theta = rng.integers(1, 400, M)
    z = rng.integers(0, 1 << T, (S, N))
    zmap, wmap = z[:, :, None, None], w[:, :, None, None]
    for conv, dense in ((g.conv_potential, g.global_potential),
                        (g.conv_potential_serial, g.global_potential_serial)):
        np.testing.assert_array_equal(conv(zmap, wmap, b, T, k)[:, :, 0, 0], dense(z, w, b, T, k))
    np.testing.assert_array_equal(g.spikepack_conv(zmap, wmap, b, theta, T, k)[:, :, 0, 0],
                                  g.spikepack_layer(z, w, b, theta, T, k))
    np.testing.assert_array_equal(g.lif_conv(zmap, wmap, b, theta, T, k)[:, :, 0, 0],
                                  g.lif_layer(z, w, b, theta, T, k))


@settings(max_examples=80, deadline=None)
@given(case=conv_cases())
def test_padding_equals_explicit_zero_borders(case):
    T, k, z, w, b, theta = (case[n] for n in ("T", "k", "z", "w", "b", "theta"))
    stride, (p_h, p_w) = case["stride"], case["padding"]
    padded = ref_pad(z, p_h, p_w)
    np.testing.assert_array_equal(g.conv_potential(z, w, b, T, k, stride, (p_h, p_w)),
                                  g.conv_potential(padded, w, b, T, k, stride, 0))
    np.testing.assert_array_equal(g.lif_conv(z, w, b, theta, T, k, stride, (p_h, p_w)),
                                  g.lif_conv(padded, w, b, theta, T, k, stride, (0, 0)))


@settings(max_examples=80, deadline=None)
@given(T=T_S, k=K_S, data=st.data())
def test_maxpool_of_words_is_maxpool_of_packed_values(T, k, data):
    k_h, k_w = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    H, W = data.draw(st.integers(k_h, 8)), data.draw(st.integers(k_w, 8))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    z = rng.integers(0, 1 << T, (2, 3, H, W))
    if data.draw(st.booleans()):
        z[..., 0, 0] = (1 << T) - 1                     # saturated words among the others
    pooled = g.maxpool_words(z, (k_h, k_w))
    assert pooled.shape == (2, 3, H // k_h, W // k_w)
    np.testing.assert_array_equal(pooled, ref_maxpool(z, k_h, k_w))
    # SPEC 6: p(z) is increasing in z, so pooling words = pooling packed values
    np.testing.assert_array_equal(g.packed_value(pooled, T, k),
                                  ref_maxpool(g.packed_value(z, T, k), k_h, k_w))


def test_maxpool_compares_unsigned_words_not_spike_counts():
    # 0b1000 has one spike, 0b0111 three: the word with the earlier spike is larger
    z = np.array([[[[0b1000, 0b0111]]]])
    assert g.maxpool_words(z, (1, 2))[0, 0, 0, 0] == 0b1000


@settings(max_examples=40, deadline=None)
@given(case=conv_cases(max_hw=5), data=st.data())
def test_network_flattens_in_channel_row_column_order(case, data):
    T, k, z, w, b, theta = (case[n] for n in ("T", "k", "z", "w", "b", "theta"))
    stride, padding = case["stride"], case["padding"]
    assume(case["k"] < 3 or T < 12)
    out_shape = g.conv_output_shape(z.shape[1:], w.shape, stride, padding)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    M = data.draw(st.integers(1, 4))
    wd = rng.integers(-100, 100, (M, int(np.prod(out_shape))))
    bd = rng.integers(-100, 100, M)
    for neuron, conv in (("spikepack", g.spikepack_conv), ("lif", g.lif_conv)):
        logits, acts = g.run_network(z, [g.Conv(w, b, theta, stride, padding), (wd, bd, None)],
                                     T, k, neuron)
        z1 = conv(z, w, b, theta, T, k, stride, padding)
        np.testing.assert_array_equal(acts[1], z1)
        np.testing.assert_array_equal(logits, g.global_potential(ref_flatten(z1), wd, bd, T, k))
        np.testing.assert_array_equal(g.flatten_map(z1), ref_flatten(z1))


def test_network_conv_pool_conv_dense_by_hand():
    T, k = 4, 1
    rng = np.random.default_rng(7)
    z = rng.integers(0, 16, (3, 1, 8, 8))
    w1, b1, t1 = rng.integers(-8, 8, (2, 1, 3, 3)), rng.integers(-20, 20, 2), np.array([10, 20])
    w2, b2, t2 = rng.integers(-8, 8, (3, 2, 2, 2)), rng.integers(-20, 20, 3), np.array([5, 7, 9])
    wd, bd = rng.integers(-8, 8, (4, 3 * 3 * 3)), rng.integers(-20, 20, 4)
    layers = [g.Conv(w1, b1, t1, 1, 1), g.MaxPool((2, 2)), g.Conv(w2, b2, t2, (1, 1), (0, 0)),
              g.Dense(wd, bd)]
    logits, acts = g.run_network(z, layers, T, k)
    # by hand, with the closed form of the tau = 2 decode (SPEC section 2)
    def decode(v, th):
        return np.clip((v - 1) // th[:, None, None], 0, 15)
    patches, _ = im2col(z, 3, 3, (1, 1), (1, 1))
    a1 = decode((patches @ w1.reshape(2, -1).T + b1).reshape(3, 8, 8, 2).transpose(0, 3, 1, 2), t1)
    a2 = ref_maxpool(a1, 2, 2)
    patches, _ = im2col(a2, 2, 2, (1, 1), (0, 0))
    a3 = decode((patches @ w2.reshape(3, -1).T + b2).reshape(3, 3, 3, 3).transpose(0, 3, 1, 2), t2)
    assert [a.shape for a in acts] == [(3, 1, 8, 8), (3, 2, 8, 8), (3, 2, 4, 4), (3, 3, 3, 3)]
    np.testing.assert_array_equal(acts[1], a1)
    np.testing.assert_array_equal(acts[2], a2)
    np.testing.assert_array_equal(acts[3], a3)
    np.testing.assert_array_equal(logits, ref_flatten(a3) @ wd.T + bd)


# --- extremes and widths (SPEC section 4) --------------------------------------------------------

@pytest.mark.parametrize("T,k,bw", [(1, 1, 2), (4, 1, 8), (8, 2, 8), (16, 1, 16), (12, 3, 9)])
@pytest.mark.parametrize("sign", [-1, 1])
def test_extremes_all_weights_and_all_spikes(T, k, bw, sign):
    C, O, K, pad = 3, 2, 3, 1
    H = W = 4
    w = np.full((O, C, K, K), -(1 << (bw - 1)) if sign < 0 else (1 << (bw - 1)) - 1)
    bias_bits, threshold_bits = 16, 16
    b = np.full(O, sign * ((1 << (bias_bits - 1)) - 1))
    z = np.full((1, C, H, W), (1 << T) - 1)
    P = g.packed_max(T, k)
    # taps inside the map at each position: (rows inside) * (columns inside), by counting
    inside = np.array([[sum(0 <= y + i - pad < H for i in range(K)) *
                        sum(0 <= x + j - pad < W for j in range(K)) for x in range(W)]
                       for y in range(H)])
    expect = b[:, None, None] + C * int(w.flat[0]) * P * inside[None]
    v = g.conv_potential(z, w, b, T, k, 1, pad)[0]
    np.testing.assert_array_equal(v, expect)
    np.testing.assert_array_equal(g.conv_potential_serial(z, w, b, T, k, 1, pad)[0], expect)
    widths = g.conv_layer_widths(in_channels=C, kernel=K, weight_bits=bw, T=T, tau_shift=k,
                                 bias_bits=bias_bits, threshold_bits=threshold_bits)
    assert g.signed_bits(int(v.min()), int(v.max())) <= widths.potential
    currents = g.conv_step_currents(z, w, T, 1, pad)
    assert g.signed_bits(int(currents.min()), int(currents.max())) <= widths.current
    assert g.signed_bits(int((currents + b[:, None, None, None]).min()),
                         int((currents + b[:, None, None, None]).max())) <= widths.lif_current
    for theta in (1, (1 << threshold_bits) - 1):
        th = np.full(O, theta)
        words = g.spikepack_conv(z, w, b, th, T, k, 1, pad)[0]
        np.testing.assert_array_equal(words, g.decode_closed(expect, theta, T, k))
        if sign > 0 and theta == 1:
            assert (words == (1 << T) - 1).all()        # saturates
        if sign < 0:
            assert (words == 0).all()
        lif = g.lif_conv(z, w, b, th, T, k, 1, pad)
        assert lif.shape == (1, O, H, W) and lif.min() >= 0 and lif.max() < (1 << T)


def test_conv_widths_use_the_kernel_fan_in():
    kw = dict(weight_bits=8, T=4, tau_shift=1, bias_bits=16, threshold_bits=16)
    assert g.conv_layer_widths(in_channels=8, kernel=(3, 5), **kw) == g.layer_widths(fan_in=120, **kw)
    assert g.conv_layer_widths(in_channels=1, kernel=1, **kw) == g.layer_widths(fan_in=1, **kw)
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        g.conv_layer_widths(in_channels=0, kernel=3, **kw)
    with pytest.raises(ValueError, match="kernel must be >= 1"):
        g.conv_layer_widths(in_channels=2, kernel=(3, 0), **kw)
    with pytest.raises(g.WidthError, match="lower fan_in"):
        g.conv_layer_widths(in_channels=4096, kernel=7, weight_bits=16, T=16, tau_shift=3,
                            bias_bits=16, threshold_bits=16)


def test_int64_path_beyond_2_53_is_exact():
    """Sums whose bound passes 2**53 leave the float64 path; compare with Python integers."""
    T, k = 16, 3
    P = g.packed_max(T, k)
    w = np.array([[[[-(1 << 15)]], [[(1 << 15) - 1]]]])     # (1, 2, 1, 1)
    z = np.array([[[[(1 << T) - 1, 12345]], [[(1 << T) - 2, 0]]]])   # (1, 2, 1, 2)
    b = np.array([-(1 << 40)])
    p = [[int(x) for x in row] for row in g.packed_value(z[0, :, 0, :], T, k)]
    expect = [-(1 << 40) + (-(1 << 15)) * p[0][x] + ((1 << 15) - 1) * p[1][x] for x in range(2)]
    assert max(abs(e) for e in expect) > 1 << 53
    assert g.conv_potential(z, w, b, T, k)[0, 0, 0].tolist() == expect
    assert g.conv_potential_serial(z, w, b, T, k)[0, 0, 0].tolist() == expect
    assert P == (8**16 - 1) // 7


def test_overflow_is_refused():
    T, k = 16, 3
    w = np.full((1, 8, 3, 3), -(1 << 15))
    z = np.full((1, 8, 3, 3), (1 << T) - 1)
    with pytest.raises(g.WidthError, match="global potential"):
        g.conv_potential(z, w, np.zeros(1, int), T, k)
    with pytest.raises(g.WidthError):
        g.spikepack_conv(z, w, np.zeros(1, int), np.ones(1, int), T, k)
    with pytest.raises(g.WidthError):
        g.lif_conv(z, w, np.zeros(1, int), np.ones(1, int), T, k)
    with pytest.raises(g.WidthError):
        g.conv_potential(z[:, :1, :1, :1], w[:, :1, :1, :1], np.array([1 << 62]), T, k)


@pytest.mark.parametrize("call,match", [
    (lambda: g.conv_potential(np.zeros((1, 2, 4, 4), int), np.zeros((1, 3, 3, 3), int),
                              np.zeros(1, int), 4, 1), "expect 3 input channels"),
    (lambda: g.conv_potential(np.zeros((1, 1, 2, 2), int), np.zeros((1, 1, 3, 3), int),
                              np.zeros(1, int), 4, 1), "does not fit"),
    (lambda: g.conv_potential(np.zeros((1, 1, 4, 4), int), np.zeros((1, 1, 3, 3), int),
                              np.zeros(2, int), 4, 1), "bias must have shape"),
    (lambda: g.conv_potential(np.zeros((1, 1, 4, 4), int), np.zeros((1, 1, 3, 3), int),
                              np.zeros(1, int), 4, 1, stride=0), "stride must be >= 1"),
    (lambda: g.conv_potential(np.zeros((1, 1, 4, 4), int), np.zeros((1, 1, 3, 3), int),
                              np.zeros(1, int), 4, 1, padding=-1), "padding must be >= 0"),
    (lambda: g.conv_potential(np.full((1, 1, 4, 4), 16), np.zeros((1, 1, 3, 3), int),
                              np.zeros(1, int), 4, 1), "4-bit spike words"),
    (lambda: g.conv_potential(np.zeros((4, 4), int), np.zeros((1, 1, 3, 3), int),
                              np.zeros(1, int), 4, 1), "feature map"),
    (lambda: g.spikepack_conv(np.zeros((1, 1, 4, 4), int), np.zeros((2, 1, 3, 3), int),
                              np.zeros(2, int), np.zeros(2, int), 4, 1), "threshold must be >= 1"),
    (lambda: g.maxpool_words(np.zeros((1, 2, 2), int), (3, 3)), "larger than"),
    (lambda: g.maxpool_words(np.zeros(4, int), 2), "feature map"),
    (lambda: g.run_network(np.zeros((1, 1, 4, 4), int),
                           [g.Conv(np.zeros((1, 1, 3, 3), int), np.zeros(1, int), None)], 4, 1),
     "readout .* must be dense"),
    (lambda: g.run_network(np.zeros((1, 4), int),
                           [(np.zeros((4, 4), int), np.zeros(4, int), np.ones(4, int)),
                            g.MaxPool(2), (np.zeros((2, 4), int), np.zeros(2, int), None)], 4, 1),
     "max pooling needs a feature map"),
])
def test_bad_conv_inputs_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
