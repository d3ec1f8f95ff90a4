"""One container rule for C and Python (csrc/pytree.c): which objects are containers,
in what order their leaves come, how they are rebuilt; the same rule for arguments,
results, grad/vjp and the torch.autograd route, and its errors by type and path."""
import argparse
import collections
import dataclasses
import time
import types
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import pytest

import tracejit
from tracejit import _C

Point = namedtuple("Point", "x y")
Other = namedtuple("Other", "x y")   # same fields, another type


class MyList(list):
    pass


class MyDict(dict):
    pass


class MyTuple(tuple):
    pass


def _ones(n=3):
    return np.arange(1.0, n + 1.0)


# ---- the rule, through _C ----------------------------------------------------------------

@pytest.mark.parametrize("tree,leaves,shown", [
    ((1, [2, 3]), [1, 2, 3], "(*, [*, *])"),
    ({"b": 1, "a": 2}, [1, 2], "{'b': *, 'a': *}"),                  # the dict's own order
    (None, [], "None"),                                               # no leaves, as jax
    ((None, 1), [1], "(None, *)"),
    (Point(1, (2, 3)), [1, 2, 3], "Point(x=*, y=(*, *))"),
    (OrderedDict([("b", 1), ("a", 2)]), [1, 2], "OrderedDict([('b', *), ('a', *)])"),
    (defaultdict(list, {"k": 1}), [1], "defaultdict(<class 'list'>, {'k': *})"),
    (MyList([1, 2]), [MyList([1, 2])], "*"),                          # subclasses: leaves
    (MyDict(a=1), [MyDict(a=1)], "*"),
    (MyTuple((1, 2)), [MyTuple((1, 2))], "*"),
    (collections.Counter("ab"), [collections.Counter("ab")], "*"),
    ("str", ["str"], "*"),
], ids=["tuple_list", "dict", "None", "None_in_tuple", "namedtuple", "OrderedDict",
        "defaultdict", "list_subclass", "dict_subclass", "tuple_subclass", "Counter", "str"])
def test_flatten_and_unflatten_round_trip(tree, leaves, shown):
    got, td = _C.tree_flatten(tree)
    assert got == leaves and _C.tree_leaves(tree) == leaves
    assert td.num_leaves == len(leaves)
    assert repr(td) == f"TreeDef({shown})"
    back = td.unflatten(got)
    assert type(back) is type(tree) and back == tree
    if isinstance(tree, dict):
        assert list(back) == list(tree)
    if isinstance(tree, defaultdict):
        assert back.default_factory is list


def test_ordered_dict_follows_its_own_order_not_the_dicts():
    d = OrderedDict([("a", 1), ("b", 2)])
    d.move_to_end("a")
    leaves, td = _C.tree_flatten(d)
    assert leaves == [2, 1] and list(td.unflatten([5, 6]).items()) == [("b", 5), ("a", 6)]


def test_structseq_is_a_container_unless_it_has_hidden_fields():
    torch = pytest.importorskip("torch")
    m = torch.max(torch.ones(2, 3), 1)
    leaves, td = _C.tree_flatten(m)
    assert len(leaves) == 2 and type(td.unflatten(leaves)) is type(m)
    st = time.localtime(0)   # struct_time: 9 visible fields, 2 hidden ones
    assert _C.tree_leaves(st) == [st]


def test_treedef_compares_hashes_and_names_paths():
    a = _C.tree_flatten({"w": (1, 2), "p": Point(3, 4)})[1]
    b = _C.tree_flatten({"w": (5, 6), "p": Point(7, 8)})[1]
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    for other in [{"w": [1, 2], "p": Point(3, 4)}, {"p": Point(3, 4), "w": (1, 2)},
                  {"w": (1, 2), "p": Other(3, 4)}, {"w": (1, 2, 3), "p": Point(3, 4)}]:
        assert _C.tree_flatten(other)[1] != a
    assert a.paths() == ["['w'][0]", "['w'][1]", "['p'].x", "['p'].y"]
    assert _C.tree_flatten(5)[1].paths() == [""]
    with pytest.raises(ValueError, match="TreeDef.unflatten: 3 leaves for a structure of 4"):
        a.unflatten([1, 2, 3])
    with pytest.raises(TypeError, match="cannot create 'tracejit._C.TreeDef' instances"):
        type(a)()


def test_a_cycle_is_a_recursion_error_not_a_crash():
    lst = [1]
    lst.append(lst)
    with pytest.raises(RecursionError, match=r"^(\[1\]){256}: a pytree nested deeper than "
                                             r"256 levels \(a container that holds itself\?\)"):
        _C.tree_leaves(lst)
    f = tracejit.compile(lambda t: 1.0)
    with pytest.raises(RecursionError, match=r"^arg 0(\[1\]){256}: a pytree nested deeper"):
        f(lst)


# ---- arguments and results ----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["namedtuple", "OrderedDict", "defaultdict", "None", "nested"])
def test_every_container_kind_as_argument_and_result(kind):
    x, y = _ones(), _ones() * 2
    if kind == "namedtuple":
        arg, fn = Point(x, y), lambda p: Point(p.x + p.y, p.x * p.y)
    elif kind == "OrderedDict":
        d = OrderedDict([("y", y), ("x", x)])
        arg, fn = d, lambda d: OrderedDict((k, v * 2) for k, v in d.items())
    elif kind == "defaultdict":
        arg, fn = defaultdict(list, {"x": x}), lambda d: defaultdict(list, {"s": d["x"] + 1})
    elif kind == "None":
        arg, fn = (x, None), lambda t: (t[0] * 3, None, t[1])
    else:
        arg = {"a": [Point(x, None), OrderedDict(b=y)]}
        fn = lambda t: {"out": (t["a"][0].x + t["a"][1]["b"], Point(None, t["a"][0].x))}
    f = tracejit.compile(fn)
    want = fn(arg)
    for _ in range(2):   # the trace, then the replay
        got = f(arg)
        assert type(got) is type(want)
        wl, wt = _C.tree_flatten(want)
        gl, gt = _C.tree_flatten(got)
        assert gt == wt, (gt, wt)
        for g, w in zip(gl, wl):
            np.testing.assert_array_equal(g, w)
    assert f.cache_info().misses == 1 and f.cache_info().hits == 1


def test_structure_is_part_of_the_key():
    f = tracejit.compile(lambda t: t[0] + t[1])
    x = _ones()
    od1, od2 = OrderedDict([(0, x), (1, x)]), OrderedDict([(1, x), (0, x)])
    for arg in [Point(x, x), Other(x, x), (x, x), [x, x], od1, od2,
                defaultdict(list, {0: x, 1: x}), defaultdict(dict, {0: x, 1: x})]:
        np.testing.assert_array_equal(f(arg), x * 2)
        np.testing.assert_array_equal(f(arg), x * 2)
    assert f.cache_info().misses == 8 and f.cache_info().hits == 8


def test_a_structure_change_names_both_structures():
    f = tracejit.compile(lambda t: t[0] * 2)
    x = _ones()
    f(Point(x, x))
    f(Other(x, x))
    assert f.cache_info().last_retrace == "arg 0: structure Point(x=*, y=*) -> Other(x=*, y=*)"


def test_a_namedtuple_of_numbers_gives_runtime_scalars_as_a_tuple_does():
    f = tracejit.compile(lambda x, p: x * p.x + p.y)
    x = _ones()
    np.testing.assert_array_equal(f(x, Point(2.0, 1.0)), x * 2 + 1)
    np.testing.assert_array_equal(f(x, Point(3.0, 0.0)), x * 3)
    assert f.cache_info().misses == 1


def test_torch_size_and_torch_return_types():
    torch = pytest.importorskip("torch")
    f = tracejit.compile(lambda x, shape: torch.max(x.reshape(shape), 1))
    x = torch.arange(6.0)
    for _ in range(2):
        got, want = f(x, torch.Size([2, 3])), torch.max(x.reshape(2, 3), 1)
        assert type(got) is type(want)
        torch.testing.assert_close(got.values, want.values)
        torch.testing.assert_close(got.indices, want.indices)
    f(x, torch.Size([3, 2]))   # a torch.Size is a static value: another shape retraces
    assert f.cache_info().misses == 2


@pytest.mark.parametrize("arg,match", [
    ({"w": MyList([1.0])}, r"arg 0\['w'\]: .*MyList \(a list subclass\) is not a container "
                           r"tracejit walks \(tuple, list, dict, None, a namedtuple, a structseq, "
                           r"OrderedDict, defaultdict, SimpleNamespace, argparse.Namespace\): as "
                           r"a leaf it is a static value and must "
                           r"be hashable; pass a plain list"),
    ((1.0, MyDict(a=1)), r"arg 0\[1\]: .*MyDict \(a dict subclass\) is not a container"),
    (Point(1.0, {2}), r"arg 0\.y: set is neither an array, a number, nor a container"),
    (defaultdict(lambda: [], {1: 1.0}), None),
    (OrderedDict(k=[{3}]), r"arg 0\['k'\]\[0\]: set is neither"),
])
def test_unsupported_containers_name_the_type_and_the_path(arg, match):
    f = tracejit.compile(lambda t: 1.0)
    if match is None:   # a lambda factory hashes by identity: a static of the key
        assert f(arg) == 1.0
        return
    with pytest.raises(TypeError, match=match):
        f(arg)


def test_kwarg_paths():
    f = tracejit.compile(lambda x, opts: x)
    with pytest.raises(TypeError, match=r"arg 'opts'\.y: set is neither"):
        f(_ones(), opts=Point(1.0, {1}))


@dataclasses.dataclass
class Pair:
    a: object
    b: object


@pytest.mark.parametrize("make,match", [
    (lambda x: MyList([x]), r"result\[1\]: .*MyList \(a list subclass\) is not a container "
                            r"tracejit walks .*: as a leaf it cannot hold traced values; pass "
                            r"a plain list"),
    (lambda x: Pair(x, 1), r"result\[1\]: .*Pair is neither an array, a number, nor a "
                           r"container tracejit walks .*: as a leaf it cannot hold traced values"),
    (lambda x: MyDict(k=[x]), r"result\[1\]: .*MyDict \(a dict subclass\)"),
])
def test_a_result_leaf_hiding_traced_values_is_refused(make, match):
    f = tracejit.compile(lambda x: (x, make(x * 2)))
    with pytest.raises(TypeError, match=match):
        f(_ones())


def test_static_result_leaves_stay_as_they_are():
    tag = MyList(["tag"])
    f = tracejit.compile(lambda x: (x + 1, tag, Pair(1, "b"), None, np))
    for _ in range(2):
        out = f(_ones())
        assert out[1] is tag and out[2] == Pair(1, "b") and out[3] is None and out[4] is np


# ---- grad, vjp, torch.autograd ----------------------------------------------------------

def test_grad_of_a_namedtuple_and_an_ordered_dict_keeps_their_types():
    def loss(p):
        return np.sum(p["pt"].x * p["pt"].y) + np.sum(p["od"]["b"] ** 2) + 0.0 * np.sum(p["od"]["a"])

    x, y, a, b = _ones(), _ones() * 2, _ones(2), _ones(2) * 3
    od = OrderedDict([("b", b), ("a", a)])
    params = {"pt": Point(x, y), "od": od, "none": None}
    g = tracejit.grad(loss)(params)
    assert type(g["pt"]) is Point and type(g["od"]) is OrderedDict and g["none"] is None
    assert list(g["od"]) == ["b", "a"]
    np.testing.assert_allclose(g["pt"].x, y)
    np.testing.assert_allclose(g["pt"].y, x)
    np.testing.assert_allclose(g["od"]["b"], 2 * b)
    np.testing.assert_allclose(g["od"]["a"], 0 * a)


def test_grad_names_the_path_of_an_integer_leaf():
    with pytest.raises(TypeError, match=r"grad requires float inputs \(float32 or float64\), "
                                        r"but arg 0\['p'\]\.y is of type int64; integer and bool "
                                        r"inputs have no gradient"):
        tracejit.grad(lambda t: np.sum(t["p"].x))({"p": Point(_ones(), np.arange(3))})


def test_vjp_with_namedtuple_output_and_cotangent():
    fn = lambda x: Point(x * 2.0, np.sin(x))   # noqa: E731
    x = _ones()
    out, back = tracejit.vjp(fn, x)
    assert type(out) is Point
    (gx,) = back(Point(np.ones(3), np.ones(3)))
    np.testing.assert_allclose(gx, 2.0 + np.cos(x))


def test_torch_autograd_route_with_namedtuple_and_ordered_dict():
    torch = pytest.importorskip("torch")
    from tracejit import _torch_autograd

    def fn(p, od):
        return Point(p.x * od["s"], OrderedDict(t=p.y * 2.0))

    f = _torch_autograd.function(fn)
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    y = torch.full((3,), 2.0, dtype=torch.float64, requires_grad=True)
    s = torch.full((3,), 3.0, dtype=torch.float64)
    for _ in range(2):
        x.grad = y.grad = None
        out = f(Point(x, y), OrderedDict(s=s))
        assert type(out) is Point and type(out.y) is OrderedDict
        (out.x.sum() + out.y["t"].sum()).backward()
        torch.testing.assert_close(x.grad, s)
        torch.testing.assert_close(y.grad, torch.full((3,), 2.0, dtype=torch.float64))
    # a scalar loss of a namedtuple argument: the fused route
    g = _torch_autograd.function(lambda p: (p.x * p.y).sum())
    x.grad = None
    g(Point(x, y)).backward()
    torch.testing.assert_close(x.grad, y.detach())


def test_the_autograd_scan_keys_the_structure():
    torch = pytest.importorskip("torch")
    from tracejit import _torch_autograd
    a = torch.ones(2, requires_grad=True)
    st = _torch_autograd._STATIC
    keys = {_C._ag_scan({}, (arg,), {}, st)[1]
            for arg in [Point(a, a), Other(a, a), (a, a), OrderedDict([(0, a), (1, a)]),
                        OrderedDict([(1, a), (0, a)]), {0: a, 1: a},
                        defaultdict(list, {0: a, 1: a}), defaultdict(dict, {0: a, 1: a})]}
    assert len(keys) == 8


# ---- namespaces: a script's parsed args --------------------------------------------------

@pytest.mark.parametrize("make", [types.SimpleNamespace, argparse.Namespace])
def test_a_namespace_is_a_container_of_its_attributes(make):
    """types.SimpleNamespace and argparse.Namespace (unhashable: `args` of a script, passed
    on to a model) are containers: arrays traced, numbers runtime scalars, strings static;
    the attribute names are structure; rebuilt as their type."""
    x = _ones(4)
    ns = make(scale=2.0, n=3, name="a", w=np.ones(3))
    leaves, td = _C.tree_flatten(ns)
    assert leaves[:3] == [2.0, 3, "a"] and td.paths() == [".scale", ".n", ".name", ".w"]
    assert type(td.unflatten(leaves)) is make and td.unflatten(leaves) == ns

    def fn(x, a):
        return x[:a.n] * a.scale + a.w, make(out=x.sum() * a.scale, name=a.name)
    f = tracejit.compile(fn)
    for scale in (2.0, 3.0):      # a changed number: read at the call, no retrace
        ns.scale = scale
        got, want = f(x, ns), fn(x, ns)
        np.testing.assert_array_equal(got[0], want[0])
        assert type(got[1]) is make and got[1].name == "a" and got[1].out == want[1].out
    assert f.cache_info().misses == 1
    ns.n, ns.w = 2, np.ones(2)   # a size: a guard retraces
    np.testing.assert_array_equal(f(x, ns)[0], fn(x, ns)[0])
    ns.extra = 1                 # another attribute: another structure
    f(x, ns)
    assert f.cache_info().misses == 3
    ns.bad = {1}
    with pytest.raises(TypeError, match=r"arg 1\.bad: set is neither an array"):
        f(x, ns)


def test_a_namespace_subclass_stays_a_leaf():
    class Opts(types.SimpleNamespace):
        pass
    assert _C.tree_leaves(Opts(a=1)) == [Opts(a=1)]
