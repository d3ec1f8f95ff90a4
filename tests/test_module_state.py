"""The C module's state: one list of its objects walked by traverse and clear (the
garbage collector sees every one), reached through the module, its heap types and
the objects that carry it, never a global: a second instance of _C in one process
has its own (its own exception classes, types and registrations) and works beside the
first; only the thread pool, libtcc and the optimizing tier are process-wide."""
import collections
import gc
import importlib.machinery
import importlib.util

import numpy as np
import pytest

import tracejit
from tracejit import _C


def test_traverse_visits_the_states_objects():
    seen = {id(o) for o in gc.get_referents(_C)}
    for obj in [_C.TreeDef, collections.defaultdict, _C.CompiledFunction, _C.CacheInfo,
                tracejit.TraceError, tracejit.InternalError, _C.Tracer]:
        assert id(obj) in seen, obj
    assert sum(1 for o in gc.get_referents(_C) if isinstance(o, type)) >= 8


def _second_instance():
    loader = importlib.machinery.ExtensionFileLoader("tracejit._C", _C.__file__)
    spec = importlib.util.spec_from_file_location("tracejit._C", _C.__file__, loader=loader)
    m = loader.create_module(spec)
    loader.exec_module(m)
    return m


def test_a_second_instance_has_its_own_state():
    m = _second_instance()
    assert m is not _C
    assert m.TraceError is not _C.TraceError and m.CompiledFunction is not _C.CompiledFunction
    assert m.Tracer is not _C.Tracer
    f = m.CompiledFunction(lambda x, y: np.exp(x) * y + 1.0)
    x, y = np.linspace(0, 1, 7), np.arange(7.0)
    np.testing.assert_allclose(f(x, y), np.exp(x) * y + 1.0)
    np.testing.assert_allclose(f(x, y), np.exp(x) * y + 1.0)   # the replay
    assert f.cache_info().hits == 1 and type(f.cache_info()) is m.CacheInfo
    # errors deep in the tracer are the classes of the instance that traced
    g = m.CompiledFunction(lambda x: np.asarray(x * 2) + 1)
    with pytest.raises(m.TraceError, match="concrete array"):
        g(x)
    with pytest.raises(_C.TraceError, match="concrete array"):
        tracejit.compile(lambda x: np.asarray(x * 2) + 1)(x)
    # a value Python needs while tracing is computed by the instance that traces
    h = m.CompiledFunction(lambda x: x if float(x.sum()) > 0 else -x)
    np.testing.assert_allclose(h(x), x)
    np.testing.assert_allclose(h(-x), x)
    assert not issubclass(m.TraceError, _C.TracejitError)
    leaves, tree = m.tree_flatten(collections.defaultdict(list, a=1, b=(2, 3)))
    assert leaves == [1, 2, 3] and type(tree) is m.TreeDef
    assert tree.unflatten([4, 5, 6]) == {"a": 4, "b": (5, 6)}
    assert tracejit.compile(lambda x: x + 1)(1.0) == 2.0   # the first one still works


def test_a_second_instance_reads_torch_through_its_own_state():
    torch = pytest.importorskip("torch")
    m = _second_instance()
    f = m.CompiledFunction(lambda x: x * 2 + 1)
    t = torch.arange(5.0)
    r = f(t)
    assert type(r) is torch.Tensor and torch.equal(r, t * 2 + 1)
    with pytest.raises(TypeError, match="requires grad"):
        f(torch.ones(3, requires_grad=True))
