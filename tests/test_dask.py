"""Compiled and loaded functions on Dask (issue 21): inside dask.array.map_blocks, and
on the worker processes of a real distributed LocalCluster (Client.map), checked against
NumPy. The functions are module-level (tests/_mp_funcs.py), pickled by reference."""
import os
import sys

import numpy as np
import pytest

import tracejit

da = pytest.importorskip("dask.array")
sys.path.insert(0, os.path.dirname(__file__))
import _mp_funcs as m  # noqa: E402


def test_map_blocks():
    x = np.random.default_rng(0).standard_normal((400, 30))
    d = da.from_array(x, chunks=(100, 30))
    got = d.map_blocks(m.scaled_tanh, 0.5, dtype=x.dtype).compute(scheduler="threads")
    want = np.concatenate([np.tanh(b * 0.5) + b.sum() for b in np.split(x, 4)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_local_cluster_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = str(tmp_path / "f.tjf")
    blocks = [np.random.default_rng(k).standard_normal((50, 8)) for k in range(4)]
    tracejit.save(m.scaled_tanh, path, blocks[0], 2.0)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        compiled = client.gather(client.map(m.scaled_tanh, blocks, [2.0] * 4))
        loaded = client.gather(client.map(_run_loaded, [path] * 4, blocks))
        pids = set(client.gather(client.map(_pid, range(8), pure=False)))
    for b, c, lo in zip(blocks, compiled, loaded):
        want = np.tanh(b * 2.0) + b.sum()
        np.testing.assert_allclose(c, want, rtol=1e-12)
        np.testing.assert_allclose(lo, want, rtol=1e-12)
    assert os.getpid() not in pids


def _run_loaded(path, block):
    return tracejit.load(path)(block, 2.0)


def _pid(_):
    return os.getpid()
