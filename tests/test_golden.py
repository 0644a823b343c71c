"""The golden model tested against itself and against independent closed forms (SPEC 2-4)."""

import functools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spikepack.sim import golden as g

T_S = st.integers(1, g.MAX_T)
K_S = st.sampled_from(g.TAU_SHIFTS)


@functools.lru_cache(maxsize=None)
def brute_levels(T, k):
    """p(z) straight from the definition, one word at a time, in Python integers."""
    tau = 1 << k
    out = []
    for z in range(1 << T):
        bits = [(z >> (T - t)) & 1 for t in range(1, T + 1)]  # step 1 = MSB
        out.append(sum(s * tau ** (T - t) for t, s in enumerate(bits, start=1)))
    return tuple(out)


def brute_decode(v, theta, T, k):
    """The SPEC's closed form for any tau: the word whose level theta*p(z) is the largest level
    strictly below v (0 when v <= 0), found by scanning every word."""
    best = 0
    for z, level in enumerate(brute_levels(T, k)):
        if theta * level < v:
            best = z if theta * level >= theta * brute_levels(T, k)[best] else best
    return best


# --- spike words and packed values ------------------------------------------------------------

@given(T=T_S, data=st.data())
def test_pack_unpack_round_trip(T, data):
    words = data.draw(st.lists(st.integers(0, (1 << T) - 1), min_size=1, max_size=20))
    z = np.array(words)
    trains = g.unpack_spike_word(z, T)
    assert trains.shape == (len(words), T)
    assert (g.pack_spike_train(trains) == z).all()
    # step 1 is the most significant bit
    assert all(trains[i, 0] == (w >> (T - 1)) & 1 for i, w in enumerate(words))


@pytest.mark.parametrize("T,k", [(T, k) for T in (1, 2, 3, 5, 8) for k in g.TAU_SHIFTS])
def test_packed_value_matches_definition(T, k):
    assert tuple(int(x) for x in g.spike_levels(T, k)) == brute_levels(T, k)
    assert g.packed_max(T, k) == brute_levels(T, k)[-1]


def test_packed_value_is_identity_for_tau_2():
    z = np.arange(1 << 16)
    assert (g.packed_value(z, 16, 1) == z).all()


@pytest.mark.parametrize("T,k", [(16, 3), (16, 1), (1, 2)])
def test_packed_value_extremes(T, k):
    assert int(g.packed_value(np.array([(1 << T) - 1]), T, k)[0]) == ((1 << (k * T)) - 1) // ((1 << k) - 1)
    assert int(g.packed_value(np.array([0]), T, k)[0]) == 0


# --- potentials -------------------------------------------------------------------------------

@st.composite
def layers(draw):
    T = draw(T_S)
    k = draw(K_S)
    bw = draw(st.integers(2, 16))
    N = draw(st.integers(1, 12))
    M = draw(st.integers(1, 6))
    lo, hi = -(1 << (bw - 1)), (1 << (bw - 1)) - 1
    edge = draw(st.sampled_from(["random", "min", "max"]))
    if edge == "random":
        w = np.array(draw(st.lists(st.integers(lo, hi), min_size=M * N, max_size=M * N))).reshape(M, N)
    else:
        w = np.full((M, N), lo if edge == "min" else hi)
    b = np.array(draw(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=M, max_size=M)))
    S = draw(st.integers(1, 4))
    z = np.array(draw(st.lists(st.integers(0, (1 << T) - 1), min_size=S * N, max_size=S * N))).reshape(S, N)
    if draw(st.booleans()):
        z[0] = (1 << T) - 1  # all spikes on
    return T, k, z, w, b


@given(layers())
@settings(max_examples=300)
def test_horner_equals_packed_potential(case):
    T, k, z, w, b = case
    bound = w.shape[1] * int(np.abs(w).max()) * g.packed_max(T, k) + int(np.abs(b).max())
    if bound >= g.INT64_LIMIT:  # refused, never wrapped
        with pytest.raises(g.WidthError, match="2\\*\\*62"):
            g.global_potential(z, w, b, T, k)
        with pytest.raises(g.WidthError):
            g.global_potential_serial(z, w, b, T, k)
        return
    packed = g.global_potential(z, w, b, T, k)
    serial = g.global_potential_serial(z, w, b, T, k)
    assert (packed == serial).all()
    # and both equal the definition in Python integers
    levels = brute_levels(T, k)
    for s in range(z.shape[0]):
        for i in range(w.shape[0]):
            ref = int(b[i]) + sum(int(w[i, j]) * levels[int(z[s, j])] for j in range(w.shape[1]))
            assert int(packed[s, i]) == ref


def test_step_currents_sum_spiking_weights():
    w = np.array([[3, -5, 7]])
    z = np.array([[0b10, 0b11, 0b01]])  # T = 2: step 1 = MSB
    assert g.step_currents(z, w, 2).tolist() == [[[3 - 5, -5 + 7]]]


# --- decode -----------------------------------------------------------------------------------

@given(T=T_S, k=K_S, theta=st.integers(1, 1 << 20), v=st.integers(-(1 << 40), 1 << 40),
       q=st.integers(-2, 1 << 17), mode=st.sampled_from(["v", "multiple", "near", "saturate"]))
@settings(max_examples=2000)
@example(T=1, k=1, theta=1, v=0, q=0, mode="v")
@example(T=16, k=3, theta=(1 << 20), v=0, q=0, mode="saturate")
def test_serial_decode_equals_closed_form(T, k, theta, v, q, mode):
    P = g.packed_max(T, k)
    theta = min(theta, (1 << 60) >> (k * (T - 1)))  # theta*tau**(T-1) must stay below 2**62
    if mode == "multiple":      # exact multiples of theta decode to the level below
        v = q * theta
    elif mode == "near":
        v = q * theta + (1 if q % 2 else -1)
    elif mode == "saturate":    # at and beyond the top level
        v = theta * P + q
    serial = int(g.decode_serial(np.array([v]), np.array([theta]), T, k)[0])
    closed = int(g.decode_closed(np.array([v]), np.array([theta]), T, k)[0])
    assert serial == closed
    if k == 1:  # SPEC: z = clip(floor((v - 1) / theta), 0, 2**T - 1)
        assert serial == min(max((v - 1) // theta, 0), (1 << T) - 1)
    if v <= 0:
        assert serial == 0
    # the decoded level is strictly below v, and the next word's level is not
    levels = g.spike_levels(T, k)
    if v > 0:
        assert theta * int(levels[serial]) < v
        if serial < (1 << T) - 1:
            assert theta * int(levels[serial + 1]) >= v


@pytest.mark.parametrize("T,k", [(T, k) for T in (1, 2, 3, 4) for k in g.TAU_SHIFTS])
def test_decode_exhaustive_small(T, k):
    theta = np.arange(1, 6)
    P = g.packed_max(T, k)
    v = np.arange(-3, 6 * P + 8)
    V, TH = np.meshgrid(v, theta)
    serial = g.decode_serial(V, TH, T, k)
    assert (serial == g.decode_closed(V, TH, T, k)).all()
    for vv, th, z in list(zip(V.ravel(), TH.ravel(), serial.ravel()))[:: max(1, V.size // 300)]:
        assert int(z) == brute_decode(int(vv), int(th), T, k)


def test_decode_saturates_to_all_ones():
    assert int(g.decode_serial(np.array([10**12]), np.array([1]), 8, 2)[0]) == 255
    assert int(g.decode_closed(np.array([10**12]), np.array([1]), 8, 2)[0]) == 255


def test_exact_multiple_decodes_one_below():
    # strict comparison: v = 5*theta is not above level 5, so z = 4 (tau = 2)
    assert int(g.decode_serial(np.array([35]), np.array([7]), 4, 1)[0]) == 4
    assert int(g.decode_serial(np.array([36]), np.array([7]), 4, 1)[0]) == 5


# --- LIF --------------------------------------------------------------------------------------

def test_lif_hand_worked():
    # theta = 4, k = 1, I = 5 every step:
    # t1: v = 0 + 5 = 5 > 4 -> 1;  t2: v = 2 + 5 - 4 = 3 -> 0
    # t3: v = 1 + 5 - 0 = 6 -> 1;  t4: v = 3 + 5 - 4 = 4 -> 0 (not strictly greater)
    assert int(g.lif_neuron(np.array([[5, 5, 5, 5]]), np.array([4]), 1)[0]) == 0b1010


def test_lif_negative_leak_floors():
    # arithmetic shift floors: -3 >> 1 = -2. theta = 1, k = 1, I = (-3, 4):
    # t1: v = -3 -> 0; t2: v = -2 + 4 = 2 > 1 -> 1
    assert int(g.lif_neuron(np.array([[-3, 4]]), np.array([1]), 1)[0]) == 0b01


@given(T=T_S, k=K_S, theta=st.integers(1, 1000),
       currents=st.lists(st.integers(-3000, 3000), min_size=16, max_size=16))
def test_lif_matches_scalar_reference(T, k, theta, currents):
    I = currents[:T]
    v, s, z = 0, 0, 0
    for t in range(T):
        v = (v >> k) + I[t] - theta * s
        s = int(v > theta)
        z = (z << 1) | s
    assert int(g.lif_neuron(np.array([I]), np.array([theta]), k)[0]) == z


def test_lif_layer_bias_is_a_constant_current():
    w = np.array([[2]])
    z = np.array([[0b111]])
    # I_t = b + 2 every step with b = 1: same as lif_neuron with currents 3, 3, 3
    assert (g.lif_layer(z, w, np.array([1]), np.array([4]), 3, 1)
            == g.lif_neuron(np.array([[3, 3, 3]]), np.array([4]), 1)).all()


# --- network ----------------------------------------------------------------------------------

def test_run_network_readout_is_not_decoded():
    rng = np.random.default_rng(3)
    T, k = 4, 2
    l1 = (rng.integers(-8, 8, (5, 6)), rng.integers(-50, 50, 5), rng.integers(1, 40, 5))
    l2 = (rng.integers(-8, 8, (3, 5)), rng.integers(-50, 50, 3), None)
    z0 = rng.integers(0, 16, (7, 6))
    logits, acts = g.run_network(z0, [l1, l2], T, k)
    z1 = g.decode_serial(g.global_potential(z0, l1[0], l1[1], T, k), l1[2], T, k)
    assert (acts[1] == z1).all()
    assert (logits == g.global_potential(z1, l2[0], l2[1], T, k)).all()
    lif_logits, lif_acts = g.run_network(z0, [l1, l2], T, k, neuron="lif")
    assert (lif_acts[1] == g.lif_layer(z0, *l1, T, k)).all()


# --- widths and refusal to wrap ---------------------------------------------------------------

@pytest.mark.parametrize("T,k,bw,N", [(4, 1, 8, 64), (16, 3, 4, 8), (16, 3, 8, 64), (8, 2, 16, 256), (1, 1, 2, 1)])
def test_widths_hold_the_extremes(T, k, bw, N):
    bias_bits, theta_bits = 12, 10
    widths = g.layer_widths(fan_in=N, weight_bits=bw, T=T, tau_shift=k, bias_bits=bias_bits,
                            threshold_bits=theta_bits, rows=min(N, 8))
    lo, hi = -(1 << (bw - 1)), (1 << (bw - 1)) - 1
    z = np.full((1, N), (1 << T) - 1)           # all spikes on
    for w_val, b_val in ((lo, -(1 << (bias_bits - 1))), (hi, (1 << (bias_bits - 1)) - 1)):
        v = int(g.global_potential(z, np.full((1, N), w_val), np.array([b_val]), T, k)[0, 0])
        assert -(1 << (widths.potential - 1)) <= v < (1 << (widths.potential - 1))
        cur = min(N, 8) * w_val
        assert -(1 << (widths.current - 1)) <= cur < (1 << (widths.current - 1))
    # and the widths are tight: one bit fewer would not hold the most negative potential
    v_min = N * lo * g.packed_max(T, k) - (1 << (bias_bits - 1))
    assert v_min < -(1 << (widths.potential - 2))
    assert ((1 << theta_bits) - 1) << (k * (T - 1)) < (1 << widths.decode)


def test_widths_lif_bound_holds_in_worst_case():
    N, bw, T, k, bias_bits, tb = 16, 8, 16, 1, 8, 8
    widths = g.layer_widths(fan_in=N, weight_bits=bw, T=T, tau_shift=k, bias_bits=bias_bits,
                            threshold_bits=tb)
    theta_max = (1 << tb) - 1
    for current in (N * 127 + 127, N * -128 - 128):
        v, s, lo, hi = 0, 0, 0, 0
        for _ in range(T):
            v = (v >> k) + current - theta_max * s
            s = int(v > theta_max)
            lo, hi = min(lo, v), max(hi, v)
        assert -(1 << (widths.lif - 1)) <= lo and hi < (1 << (widths.lif - 1))


def test_width_calculator_rejects_too_wide():
    with pytest.raises(g.WidthError, match="limit is 62"):
        g.layer_widths(fan_in=1 << 16, weight_bits=16, T=16, tau_shift=3, bias_bits=16,
                       threshold_bits=16)


@pytest.mark.parametrize("kwargs,match", [
    (dict(T=0, tau_shift=1), "T must be between"),
    (dict(T=17, tau_shift=1), "T must be between"),
    (dict(T=4, tau_shift=4), "tau_shift must be one of"),
])
def test_bad_params_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        g.packed_max(**kwargs)


def test_golden_refuses_int64_overflow():
    w = np.array([[1 << 40]])
    z = np.array([[(1 << 16) - 1]])
    with pytest.raises(g.WidthError, match="2\\*\\*62"):
        g.global_potential(z, w, np.array([0]), 16, 3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="threshold must be >= 1"):
        g.decode_serial(np.array([5]), np.array([0]), 4, 1)
    with pytest.raises(ValueError, match="spike words"):
        g.global_potential(np.array([[16]]), np.array([[1]]), np.array([0]), 4, 1)
    with pytest.raises(ValueError, match="inputs"):
        g.global_potential(np.array([[1, 2]]), np.array([[1]]), np.array([0]), 4, 1)
    with pytest.raises(TypeError, match="integer"):
        g.global_potential(np.array([[1.5]]), np.array([[1]]), np.array([0]), 4, 1)
