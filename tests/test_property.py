"""Property-based differential test: random NumPy programs compiled by tracejit
must agree with NumPy eager, ``tracejit.compile(fn)(*args) == fn(*args)``.

A program is a random DAG of statements drawn from every elementwise op of
tracejit.op_table(), the operators, np.where, np.clip, astype, reductions, views
and matmul, over 1-3 arrays of broadcast-compatible shapes, the five dtypes and
C-contiguous / transposed / strided / negative-stride layouts, plus weak Python
scalars (written in the code, or passed as a runtime argument).

Each statement is run by NumPy while it is drawn, so the generator knows every
intermediate value and uses it to stay where NumPy's result is defined and
reproducible: no integer overflow, integer division by zero or negative integer
power.  It also carries, per element, how far a float intermediate may
legitimately drift from NumPy's (transcendentals and reassociated sums differ in
the last bits): the bound is propagated by re-running each statement on operands
perturbed by their bounds, and a statement whose result could flip within it (a
comparison, floor, argmax, truth test of a value at the edge) is not drawn.
When NumPy refuses a statement (dtype or shape), the program sometimes ends
there and tracejit must refuse it too.

TRACEJIT_FUZZ_EXAMPLES sets the number of examples (default 150); with CI=true
the run is derandomized.  A failing example prints a runnable reproducer.
"""
import itertools
import os
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tracejit
from conftest import DTYPES, SUPPORTED, assert_matches_numpy, make_input

UFUNCS = sorted((d["numpy"], d["arity"]) for d in tracejit.op_table() if d["numpy"] != "where")
BINOPS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "//": "floor_divide",
          "%": "remainder", "**": "power", "&": "bitwise_and", "|": "bitwise_or",
          "^": "bitwise_xor", "<<": "left_shift", ">>": "right_shift", "<": "less",
          "<=": "less_equal", ">": "greater", ">=": "greater_equal", "==": "equal",
          "!=": "not_equal"}
UNOPS = {"(-{})": "negative", "(+{})": "positive", "(~{})": "invert", "abs({})": "absolute"}
REDUCTIONS = ("sum", "mean", "max", "min", "prod", "any", "all", "argmax", "argmin")
MOVES = ("np.transpose({})", "{}.T", "{}.reshape(-1)", "{}[None]", "{}[::-1]", "{}[..., :1]")
CONSTS = ("0", "1", "2", "3", "(-1)", "(-2)", "0.5", "0.1", "(-1.5)", "2.5", "True")
CATEGORIES = ("ufunc",) * 8 + ("binop",) * 4 + ("unop", "where", "clip", "astype", "reduce",
                                              "reduce", "move", "move", "matmul")
LAYOUTS = ("C", "C", "T", "step", "neg")
FLOAT_DOMAINS = ("any", "any", "ties", "small", "pos", "unit", "nonfinite")
INT_DOMAINS = ("any", "ties", "small", "pos", "nonzero")
MAX_NODES, MAX_DEPTH = 8, 6

# How statements relate to rounding (kind = ufunc name, reduction name, or below).
INEXACT = {"exp", "expm1", "log", "log1p", "log2", "sin", "cos", "tan", "tanh", "arctan",
           "arcsin", "arccos", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "exp2",
           "log10", "cbrt", "logaddexp", "arctan2", "hypot", "power", "float_power",
           "floor_divide", "remainder", "sum", "mean", "prod", "matmul"}
NEAR_EXACT = {"floor_divide", "remainder"}  # fmod-based: a few ulps of the operands
ACCUMULATE = {"sum", "mean", "prod", "matmul"}  # error grows with the reduced count
MAGNITUDE = {"prod", "matmul"}  # error propagated through |x| + err
# Float operands must be exact (error-free) for these; the truthiness of TRUTHY
# operands, and the difference of EQUALITY operands, must be clear of zero.
DISCONTINUOUS = {"floor", "ceil", "sign", "floor_divide", "remainder", "fmod", "copysign",
                 "signbit", "arctan2", "argmax", "argmin", "astype_int"}
TRUTHY = {"logical_and", "logical_or", "logical_xor", "logical_not", "any", "all",
          "astype_bool"}
EQUALITY = {"equal", "not_equal"}
DIVISIONS = {"floor_divide", "remainder", "fmod", "reciprocal"}
ULPS = 8
INT_BOUND = 2 ** 20  # integer intermediates stay within +-2**20 (no overflow anywhere)

_CI = os.environ.get("CI") == "true"
FUZZ = settings(max_examples=int(os.environ.get("TRACEJIT_FUZZ_EXAMPLES", "150")),
                deadline=None, derandomize=_CI, database=None if _CI else settings().database,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])


def np_eval(expr, env):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eval(expr, {"np": np}, env)


class Program:
    def __init__(self, params, args, arg_code, lines, outputs, errs, error):
        self.params, self.args, self.arg_code = params, args, arg_code
        self.outputs, self.errs, self.error = outputs, errs, error
        ret = ", ".join(outputs)
        body = "".join(f"    {line}\n" for line in lines)
        self.source = f"def fn({', '.join(params)}):\n{body}    return {ret}\n"
        ns = {"np": np}
        exec(self.source, ns)
        self.fn = ns["fn"]

    def __repr__(self):
        call = ", ".join(self.params)
        what = "must raise" if self.error else "differs from NumPy"
        return ("\n# reproducer\nimport numpy as np, tracejit\n"
                "from numpy import array, nan, inf, float32, float64, int32, int64\n"
                + "".join(f"{p} = {c}\n" for p, c in zip(self.params, self.arg_code))
                + self.source + f"print(fn({call}))\n"
                + f"print(tracejit.compile(fn)({call}))  # {what}\n")


def make_array(rng, shape, dtype, domain, layout):
    """(array, code that rebuilds it) with the given layout."""
    shape = tuple(shape)
    if not shape:
        layout = "C"
    base_shape = {"C": shape, "neg": shape, "T": shape[::-1],
                  "step": shape[:1] and (2 * shape[0],) + shape[1:]}[layout]
    base = make_input(rng, base_shape, dtype, domain)
    suffix = {"C": "", "neg": "[::-1]", "T": ".T", "step": "[::2]"}[layout]
    with np.printoptions(threshold=sys.maxsize, floatmode="unique"):
        code = repr(base) + suffix
    if base.size == 0:
        code = f"np.zeros({base_shape}, dtype={dtype}){suffix}"
    return eval("base" + suffix), code


def pick(draw, names, depth):
    """An operand: usually the newest value (chains), otherwise any."""
    names = [n for n in names if depth[n] < MAX_DEPTH]
    if draw(st.integers(0, 2)) == 0:
        return names[-1]
    return draw(st.sampled_from(names))


def mm_ok(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
        return False
    try:
        np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
        return True
    except ValueError:
        return False


def draw_node(draw, env, names, depth, scalars):
    """-> (expression, operands, kind, reduced count)."""
    cat = draw(st.sampled_from(CATEGORIES))
    a = pick(draw, names, depth)
    nd = np.ndim(env[a])

    def operand():
        return draw(st.sampled_from(scalars)) if draw(st.integers(0, 3)) == 0 else \
            pick(draw, names, depth)

    if cat in ("ufunc", "binop"):
        if cat == "ufunc":
            name, arity = draw(st.sampled_from(UFUNCS))
        else:
            op = draw(st.sampled_from(sorted(BINOPS)))
            name, arity = BINOPS[op], 2
        args = [a] + [operand() for _ in range(arity - 1)]
        if arity == 2 and draw(st.booleans()):
            args.reverse()
        expr = f"np.{name}({', '.join(args)})" if cat == "ufunc" else f"({args[0]} {op} {args[1]})"
        return expr, args, name, 1
    if cat == "unop":
        tpl = draw(st.sampled_from(sorted(UNOPS)))
        return tpl.format(a), [a], UNOPS[tpl], 1
    if cat == "where":
        args = [a, operand(), operand()]
        return f"np.where({', '.join(args)})", args, "where", 1
    if cat == "clip":
        lo, hi = operand(), operand()
        bounds = draw(st.sampled_from([(lo, hi), (lo, "None"), ("None", hi)]))
        return f"np.clip({a}, {bounds[0]}, {bounds[1]})", [a, *bounds], "clip", 1
    if cat == "astype":
        dt = draw(st.sampled_from(DTYPES))
        kind = {"b": "astype_bool", "i": "astype_int", "f": "astype_float"}[np.dtype(dt).kind]
        return f"{a}.astype(np.{dt})", [a], kind, 1
    if cat == "reduce":
        fn = draw(st.sampled_from(REDUCTIONS))
        axis = None if draw(st.integers(0, 2)) == 0 else \
            draw(st.integers(-max(nd, 1), max(nd, 1) - 1))
        kw = f"axis={axis}, keepdims={draw(st.booleans())}"
        if isinstance(env[a], np.ndarray) and draw(st.booleans()):
            expr = f"{a}.{fn}({kw})"
        else:
            expr = f"np.{fn}({a}, {kw})"
        return expr, [a], fn, 0
    if cat == "move":
        tpl = draw(st.sampled_from(MOVES if nd else MOVES[:4]))
        return tpl.format(a), [a], "move", 1
    pairs = [(x, y) for x in names for y in names if max(depth[x], depth[y]) < MAX_DEPTH
             and mm_ok(env[x], env[y])]
    x, y = draw(st.sampled_from(pairs)) if pairs and draw(st.integers(0, 9)) else (a, operand())
    k = np.shape(env[x])[-1] if np.ndim(env[x]) else 1
    expr = f"({x} @ {y})" if draw(st.booleans()) else f"np.matmul({x}, {y})"
    return expr, [x, y], "matmul", k


def perturbed_env(env, errs, hot, signs):
    env2 = dict(env)
    for n, s in zip(hot, signs):
        v, e = np.asarray(env[n]), errs[n]
        w = (v.astype(np.float64) + s * e).astype(v.dtype)
        env2[n] = np.where((e > 0) & (w == v), np.nextafter(v, s * np.inf), w)
    return env2


def magnitude(expr, env, errs, names, plus):
    """expr on |operands| (+ their errors): a bound for sums and products."""
    env2 = dict(env)
    for n in names:
        v = np.abs(np.asarray(env[n], dtype=np.float64))
        env2[n] = v + errs[n] if plus and errs[n] is not None else v
    return np.asarray(np_eval(expr, env2), dtype=np.float64)


def uncertain_zero(v, e):
    v = np.asarray(v, dtype=np.float64)
    return bool(np.any((e > 0) & (np.abs(v) <= e)))


def int_overflow(expr, env, names, kind, out):
    """True if an integer result left +-INT_BOUND or wrapped (checked against the
    same statement on Python ints)."""
    if np.any(out > INT_BOUND) or np.any(out < -INT_BOUND):
        return True
    env2 = dict(env)
    for n in names:
        if np.asarray(env[n]).dtype.kind in "bi":
            env2[n] = np.asarray(env[n]).astype(object)
    try:
        exact = np.asarray(np_eval(expr, env2))
    except Exception:  # no object loop (fmod, floor, ...): nothing that can overflow
        return kind == "left_shift"  # ... except a shift by a negative count
    return exact.shape != out.shape or not bool(np.all(exact == out))


def check_node(expr, args, kind, count, env, errs):
    """NumPy's verdict on one statement: ("ok", value, err), ("error",) when NumPy
    refuses it for its dtypes or shapes, or None when it is not drawable."""
    try:
        value = np_eval(expr, env)
    except (TypeError, ValueError) as exc:
        return None if "negative integer powers" in str(exc) else ("error",)
    except Exception:
        return None
    out = np.asarray(value)
    if out.dtype not in SUPPORTED:
        return ("error",)
    names = list(dict.fromkeys(x for x in args if x in errs))  # array operands
    hot = [n for n in names if errs[n] is not None]

    def err_of(x):
        return errs.get(x) if errs.get(x) is not None else 0.0

    if kind in DIVISIONS and out.dtype.kind == "i" and np.any(np.asarray(np_eval(args[-1], env)) == 0):
        return None
    if hot and kind in DISCONTINUOUS:
        return None
    for n in (names if kind in TRUTHY else args[:1] if kind == "where" else []):
        if n in hot and uncertain_zero(env[n], errs[n]):
            return None
    if hot and kind in EQUALITY:
        a, b = (np.asarray(np_eval(x, env), dtype=np.float64) for x in args)
        if uncertain_zero(a - b, err_of(args[0]) + err_of(args[1])):
            return None
    signs = list(itertools.product((-1, 1), repeat=len(hot))) if hot else []
    if out.dtype.kind in "biu":
        for s in signs:
            p = np.asarray(np_eval(expr, perturbed_env(env, errs, hot, s)))
            if p.shape != out.shape or not np.array_equal(p, out):
                return None
        if out.dtype.kind == "i" and int_overflow(expr, env, names, kind, out):
            return None
        return ("ok", value, None)
    out64 = out.astype(np.float64)
    finite = np.isfinite(out64)
    err = np.zeros(out.shape)
    if hot and kind in MAGNITUDE:
        err = magnitude(expr, env, errs, names, True) - magnitude(expr, env, errs, names, False)
    for s in (signs if kind not in MAGNITUDE else []):
        p = np.asarray(np_eval(expr, perturbed_env(env, errs, hot, s)), dtype=np.float64)
        if p.shape != out.shape or not np.array_equal(np.where(finite, 0, p), np.where(finite, 0, out64),
                                                      equal_nan=True) or not np.isfinite(p[finite]).all():
            return None  # the pattern of nan/inf could change within the error
        err = np.maximum(err, np.abs(np.where(finite, p - out64, 0)))
    if kind in INEXACT:
        fi = np.finfo(out.dtype)
        if kind in ACCUMULATE:
            n = count or max(1, int(np.asarray(env[args[0]]).size // max(out.size, 1)))
            own = (n + ULPS) * fi.eps * magnitude(expr, env, errs, names, False)
        elif kind in NEAR_EXACT:
            own = ULPS * fi.eps * sum(np.abs(np.asarray(np_eval(x, env), dtype=np.float64))
                                      for x in args)
        else:
            own = ULPS * fi.eps * np.abs(out64)
        err = err + own + ULPS * fi.tiny
    err = np.where(finite, err, 0.0)
    if not np.isfinite(err).all():
        return None
    return ("ok", value, err if err.any() else None)


@st.composite
def programs(draw):
    n_in = draw(st.integers(1, 3))
    min_side = 0 if draw(st.integers(0, 5)) == 0 else 1
    shapes = draw(mutually_broadcastable_shapes(num_shapes=n_in, min_dims=0, max_dims=4,
                                                min_side=min_side, max_side=6)).input_shapes
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    params, args, arg_code, env, errs, depth = [], [], [], {}, {}, {}
    for i, shape in enumerate(shapes):
        dt = draw(st.sampled_from(DTYPES))
        dom = draw(st.sampled_from(FLOAT_DOMAINS if dt.startswith("float") else INT_DOMAINS))
        x, code = make_array(rng, shape, dt, dom, draw(st.sampled_from(LAYOUTS)))
        name = f"a{i}"
        params.append(name), args.append(x), arg_code.append(code)
        env[name], errs[name], depth[name] = x, None, 0
    names = list(params)
    scalars = list(CONSTS)
    if draw(st.integers(0, 3)) == 0:  # a runtime Python scalar argument
        s = draw(st.sampled_from((2, -1, 3, 0.5, -2.5, 0.1)))
        params.append("s0"), args.append(s), arg_code.append(repr(s))
        env["s0"] = s
        scalars += ["s0"] * 4
    lines, error = [], False
    for i in range(draw(st.integers(1, MAX_NODES))):
        for _attempt in range(10):
            expr, ops, kind, count = draw_node(draw, env, names, depth, scalars)
            verdict = check_node(expr, ops, kind, count, env, errs)
            if verdict is None or (verdict[0] == "error" and draw(st.integers(0, 4))):
                continue
            name = f"v{i}"
            lines.append(f"{name} = {expr}")
            if verdict[0] == "error":
                error = True
                break
            env[name], errs[name] = verdict[1], verdict[2]
            depth[name] = 1 + max(depth[x] for x in ops if x in depth)
            names.append(name)
            break
        if error:
            break
    if not lines:  # nothing drawable
        lines.append("v0 = (a0 + 0)")
        errs["v0"] = None
    outputs = [lines[-1].split(" = ")[0]]
    nodes = [n for n in names if n.startswith("v") and n != outputs[0]]
    if not error and nodes and draw(st.integers(0, 4)) == 0:
        outputs.append(draw(st.sampled_from(nodes)))
    return Program(params, args, arg_code, lines, outputs, [errs.get(n) for n in outputs], error)


def assert_close(result, expected, err, inputs):
    """Same type, dtype, shape, nan/inf positions; integers and booleans equal;
    floats within rtol (1e-5 float32, 1e-11 float64) plus twice the propagated
    error bound of each element."""
    expected = np.asarray(expected)
    if expected.dtype.kind in "biu":
        assert_matches_numpy(result, expected, inputs=inputs)
        return
    assert type(result) is np.ndarray, f"result is {type(result).__name__}, not numpy.ndarray"
    assert (result.dtype, result.shape) == (expected.dtype, expected.shape), \
        f"dtype/shape {result.dtype} {result.shape} != numpy's {expected.dtype} {expected.shape}"
    assert result.flags.c_contiguous, "result is not C-contiguous"
    assert not any(np.shares_memory(result, a) for a in inputs), "result aliases an input"
    e, r = expected.astype(np.float64), result.astype(np.float64)
    for what, pos in (("nan", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(pos(r), pos(e), err_msg=f"{what} positions differ")
    rtol = 1e-5 if expected.dtype == np.float32 else 1e-11
    tol = rtol * np.abs(e) + (0.0 if err is None else 2.0 * np.broadcast_to(err, e.shape))
    with np.errstate(all="ignore"):
        bad = np.isfinite(e) & ~(np.abs(r - e) <= tol)
    if bad.any():
        rows = [f"  at {tuple(int(j) for j in i)}: tracejit {r[tuple(i)]!r}, numpy {e[tuple(i)]!r}"
                f", allowed {np.broadcast_to(tol, e.shape)[tuple(i)]!r}"
                for i in np.argwhere(bad)[:6]]
        raise AssertionError(f"{int(bad.sum())} of {e.size} elements differ:\n" + "\n".join(rows))


def check_program(prog):
    f = tracejit.compile(prog.fn)
    args = prog.args
    copies = [np.copy(a) if isinstance(a, np.ndarray) else a for a in args]
    if prog.error:
        with pytest.raises((TypeError, ValueError, tracejit.TraceError)):
            f(*args)
        return
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = prog.fn(*args)
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    for _call in range(2):  # trace + compile, then replay from the cache
        result = f(*args)
        if len(prog.outputs) == 1:
            result, want = (result,), (expected,)
        else:
            assert isinstance(result, tuple) and len(result) == len(prog.outputs), type(result)
            want = expected
        for r, e, err in zip(result, want, prog.errs):
            assert_close(r, e, err, arrays)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c, err_msg="an input was modified")


@FUZZ
@given(programs())
def test_random_programs_match_numpy(prog):
    check_program(prog)
