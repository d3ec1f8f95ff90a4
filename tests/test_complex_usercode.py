"""complex NumPy programs written as users write them (issue 22, item 1): a quantum
state simulation (gates as complex matrices, expectation values through np.vdot), a
DFT-by-matrix signal filter (no FFT), and a Mandelbrot-style iteration; each compiled
and compared with eager NumPy over two calls with other values."""
import numpy as np

import tracejit


def _close(r, e, rtol=1e-12):
    if isinstance(e, tuple):
        for a, b in zip(r, e):
            _close(a, b, rtol)
        return
    assert type(r) is type(e) and np.asarray(r).dtype == np.asarray(e).dtype
    np.testing.assert_allclose(r, e, rtol=rtol, atol=rtol * np.max(np.abs(e)))


H = np.array([[1, 1], [1, -1]], complex) / np.sqrt(2)
S = np.array([[1, 0], [0, 1j]])


def apply_1q(state, gate, k, n):
    """A one-qubit gate on qubit k of an n-qubit state vector (the textbook reshape)."""
    psi = state.reshape((2,) * n)
    psi = np.moveaxis(psi, k, 0)
    psi = np.tensordot(gate, psi, axes=1)
    return np.moveaxis(psi, 0, k).reshape(-1)


def circuit(state, thetas):
    n = 4
    for k in range(n):
        state = apply_1q(state, H, k, n)
        rz = np.array([[1, 0], [0, 1]]) * np.exp(-0.5j * thetas[k] * np.array([1, -1]))
        state = apply_1q(state, rz, k, n)
    state = apply_1q(state, S, 2, n)
    probs = np.abs(state) ** 2
    z0 = np.where((np.arange(16) >> 3) & 1, -1.0, 1.0)
    return state, probs, np.vdot(state, z0 * state).real, np.angle(state[3])


def test_quantum_circuit():
    f = tracejit.compile(circuit)
    rng = np.random.default_rng(0)
    for _ in range(2):
        state = rng.standard_normal(16) + 1j * rng.standard_normal(16)
        state /= np.linalg.norm(state)
        thetas = rng.uniform(-np.pi, np.pi, 4)
        _close(f(state, thetas), circuit(state, thetas))


def dft_filter(x, cutoff):
    """Low-pass by an explicit DFT matrix (no FFT): transform, mask, inverse, real part."""
    n = x.shape[-1]
    k = np.arange(n)
    w = np.exp(-2j * np.pi * np.outer(k, k) / n)
    X = w @ x
    freq = np.minimum(k, n - k)
    X = np.where(freq <= cutoff, X, 0)
    y = (w.conj() @ X) / n
    power = (X * X.conj()).real.sum() / n
    return y.real, np.abs(X).max(), power


def test_dft_filter():
    f = tracejit.compile(dft_filter, static_argnames="cutoff")
    rng = np.random.default_rng(1)
    for _ in range(2):
        t = np.linspace(0, 1, 64, endpoint=False)
        x = np.sin(2 * np.pi * 3 * t) + 0.3 * rng.standard_normal(64)
        _close(f(x, cutoff=5), dft_filter(x, cutoff=5), 1e-10)


def mandel(c, steps=12):
    z = np.zeros_like(c)
    count = np.zeros(c.shape, np.int64)
    for _ in range(steps):
        z = np.where(np.abs(z) <= 2, z * z + c, z)
        count += np.abs(z) <= 2
    return count, z


def test_mandelbrot():
    f = tracejit.compile(mandel)
    for shift in (0.0, 0.25):
        re, im = np.meshgrid(np.linspace(-2, 1, 24) + shift, np.linspace(-1.2, 1.2, 18))
        c = re + 1j * im
        r, e = f(c), mandel(c)
        np.testing.assert_array_equal(r[0], e[0])
        _close(r[1], e[1], 1e-9)


def test_complex64_signal():
    """A complex64 mixer as radio code writes it: weak Python scalars keep complex64."""
    def mix(iq, f0):
        n = np.arange(iq.shape[0], dtype=np.float32)
        lo = np.exp(-2j * np.pi * f0 * n / np.float32(iq.shape[0])).astype(np.complex64)
        base = iq * lo
        return base, np.abs(base).mean(), np.angle(base[:8])

    f = tracejit.compile(mix, static_argnames="f0")
    rng = np.random.default_rng(2)
    for _ in range(2):
        iq = (rng.standard_normal(256) + 1j * rng.standard_normal(256)).astype(np.complex64)
        _close(f(iq, f0=7.0), mix(iq, f0=7.0), 1e-5)
