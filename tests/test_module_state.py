"""The C module's state: one list of its objects walked by traverse and clear (the
garbage collector sees every one), one instance per process (the state reached by
code with no module at hand is that instance's)."""
import collections
import gc
import importlib.machinery
import importlib.util

import pytest

import tracejit
from tracejit import _C


def test_traverse_visits_the_states_objects():
    seen = {id(o) for o in gc.get_referents(_C)}
    for obj in [_C.TreeDef, collections.defaultdict, _C.CompiledFunction, _C.CacheInfo,
                tracejit.TraceError, tracejit.InternalError, _C.Tracer]:
        assert id(obj) in seen, obj
    assert sum(1 for o in gc.get_referents(_C) if isinstance(o, type)) >= 8


def test_a_second_instance_is_refused():
    loader = importlib.machinery.ExtensionFileLoader("tracejit._C", _C.__file__)
    spec = importlib.util.spec_from_file_location("tracejit._C", _C.__file__, loader=loader)
    with pytest.raises(ImportError, match="tracejit._C is already loaded in this process; its "
                                          "thread pool and compiler are process-wide"):
        loader.exec_module(loader.create_module(spec))
    assert tracejit.compile(lambda x: x + 1)(1.0) == 2.0   # the first one still works
