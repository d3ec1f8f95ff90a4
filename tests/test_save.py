"""tracejit.save / tracejit.load: round trips (bit for bit against the in-process
function, to rounding against eager), a loaded function in a fresh process without the
Python source, the file's validation (truncated, corrupted, other version, other
primitives, not a saved function) and what save refuses."""
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import tracejit
from tracejit import _C
from tracejit._save import LoadError

W = np.random.default_rng(0).standard_normal((8, 4))


def f(x, b, s):
    h = np.tanh(x @ W + b) * s
    return {"sum": h.sum(axis=1), "max": np.exp(h).max()}, [x.shape[0], None]


def in_process(fn, args):
    """The in-process function's TinyCC kernel (a loaded function runs it, with the
    process's primitives: its BLAS too)."""
    mode = _C._tier_mode()
    try:
        tracejit.set_tier("tcc")
        return tracejit.compile(fn)(*args)
    finally:
        tracejit.set_tier(mode)


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


@pytest.fixture
def saved(tmp_path):
    x, b = np.random.default_rng(1).random((5, 8)), np.random.default_rng(2).random(4)
    path = str(tmp_path / "f.tjf")
    tracejit.save(f, path, x, b, 2.0)
    return path, (x, b, 2.0)


def test_round_trip(saved):
    path, args = saved
    g = tracejit.load(path)
    got, ref, eager = g(*args), in_process(f, args), f(*args)
    assert got[1] == [5, None]
    for k in ("sum", "max"):
        assert np.asarray(got[0][k]).tobytes() == np.asarray(ref[0][k]).tobytes()
        np.testing.assert_allclose(got[0][k], eager[0][k], rtol=1e-12)
    assert isinstance(got[0]["max"], np.float64)
    # other values of the same shapes: still the in-process function's bits
    x2, b2 = np.random.default_rng(3).random((5, 8)), np.random.default_rng(4).random(4)
    got, ref = g(x2, b2, -1.0), in_process(f, (x2, b2, -1.0))
    assert got[0]["sum"].tobytes() == ref[0]["sum"].tobytes()


def test_other_arguments_refused(saved):
    path, (x, b, s) = saved
    g = tracejit.load(path)
    with pytest.raises(TypeError, match=r"saved for arguments \['float64\[5, 8\]', "
                                        r"'float64\[4\]', 'float64'\], called with "
                                        r"\['float64\[6, 8\]', 'float64\[4\]', 'float'\]"):
        g(np.ones((6, 8)), b, s)


def test_torch_mlp_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(),
                              torch.nn.Linear(32, 4)).eval()
    x = torch.randn(8, 16)
    path = str(tmp_path / "mlp.tjf")
    tracejit.save(net, path, x)
    got = tracejit.load(path)(x.numpy())
    with torch.no_grad():
        ref = in_process(net, (x,)).numpy()
        eager = net(x).numpy()
    assert got.tobytes() == ref.tobytes()
    np.testing.assert_allclose(got, eager, rtol=1e-5, atol=1e-6)


def test_fresh_process_without_source(saved, tmp_path):
    """The loaded function runs in a process that never saw f's source: first call and
    its result's bits."""
    path, args = saved
    np.save(tmp_path / "x.npy", args[0])
    np.save(tmp_path / "b.npy", args[1])
    script = textwrap.dedent(f"""
        import time, numpy as np, tracejit
        x, b = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'b.npy')!r})
        t0 = time.perf_counter()
        g = tracejit.load({path!r})
        r = g(x, b, 2.0)
        print(r[0]["sum"].tobytes().hex(), time.perf_counter() - t0)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    bits, _seconds = out.stdout.split()
    assert bytes.fromhex(bits) == in_process(f, args)[0]["sum"].tobytes()


def _rewrite_header(path, edit):
    data = read(path)
    magic, version, hlen, _crc, z = struct.unpack_from("<4sIQII", data)
    h = json.loads(data[24:24 + hlen])
    edit(h)
    new = json.dumps(h).encode().ljust(hlen)
    return struct.pack("<4sIQII", magic, version, hlen, zlib.crc32(new), z) + new + data[24 + hlen:]


def _set_abi(h):
    h["abi"]["primitives"] = "0" * 32


def _bad_weight(h):
    h["variants"][0]["weights"][0]["crc32"] ^= 1


@pytest.mark.parametrize("damage,message", [
    (lambda d, p: d[:10], "is truncated"),
    (lambda d, p: d[:200], "is truncated (its header)"),
    (lambda d, p: d[:-100], "is truncated (its weights)"),
    (lambda d, p: d[:30] + bytes([d[30] ^ 0x20]) + d[31:], "is corrupted (its header's checksum)"),
    (lambda d, p: d[:-3] + bytes([d[-3] ^ 1]) + d[-2:], "is corrupted (a weight's checksum)"),
    (lambda d, p: b"PK\x03\x04" + d[4:], "is not a saved tracejit function"),
    (lambda d, p: d[:4] + struct.pack("<I", 2) + d[8:],
     "has format version 2; this tracejit reads version 1"),
    (lambda d, p: _rewrite_header(p, _set_abi),
     "was saved by a tracejit whose primitives differ from this one's"),
    (lambda d, p: _rewrite_header(p, _bad_weight), "is corrupted (a weight's checksum)"),
])
def test_damaged_files(saved, tmp_path, damage, message):
    path, _ = saved
    data = read(path)
    bad = str(tmp_path / "bad.tjf")
    with open(bad, "wb") as fh:
        fh.write(damage(data, path))
    with pytest.raises(LoadError) as e:
        tracejit.load(bad)
    assert str(e.value) == f"tracejit.load: {bad} {message}" or message in str(e.value)
    assert str(e.value).startswith(f"tracejit.load: {bad} ")


def test_save_refuses_what_export_refuses(tmp_path):
    def draw(x):
        return x + np.random.rand(*x.shape)

    with pytest.raises(tracejit.TraceError, match="tracejit.export cannot export random draws"):
        tracejit.save(draw, str(tmp_path / "d.tjf"), np.ones(3))
    with pytest.raises(tracejit.TraceError, match="saves functions of arrays and numbers "
                                                  "passed positionally"):
        tracejit.save(lambda d: d["a"] * 2, str(tmp_path / "c.tjf"), {"a": np.ones(3)})
    with pytest.raises(TypeError, match="the example arguments choose the variant to save"):
        tracejit.save(f, str(tmp_path / "n.tjf"))
    assert not os.path.exists(tmp_path / "d.tjf")
