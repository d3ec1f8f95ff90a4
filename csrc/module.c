/* tracejit._C: module state, exception classes, libtcc loading at import, and the
 * few introspection functions the tests and the Python layer use. Multi-phase init;
 * the state is reached through the module, a heap type of it, or an object that
 * carries it (tracejit.h says which): no global points at it. */
#include "backend/backend.h"   /* and tracejit.h: libtcc at import, the tier's mode */
#include "loops.h"
#include "backend/cuda_api.h" /* the CUDA backend's test hooks */
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

int tj_protocols_init(tj_state *st);                           /* trace/protocols.c */
int tj_function_type_init(PyObject *module, tj_state *st);     /* function.c */
PyObject *tj_torch_ew(PyObject *m, PyObject *const *args, Py_ssize_t nargs);   /* trace/torch.c */
PyObject *tj_torch_register(PyObject *m, PyObject *args);
PyObject *tj_torch_lift(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_trace_capture(PyObject *m, PyObject *arr);
PyObject *tj_torch_trace_error(PyObject *m, PyObject *msg);
PyObject *tj_torch_note_made(PyObject *m, PyObject *o);
PyObject *tj_torch_stand_in(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_torch_stood_in_for(PyObject *m, PyObject *o);
PyObject *tj_py_trace_device(PyObject *m, PyObject *unused);
PyObject *tj_torch_assign(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_effects_register(PyObject *m, PyObject *swaps);
PyObject *tj_effects_tracing(PyObject *m, PyObject *unused);
PyObject *tj_dl_torch_alloc(PyObject *m, PyObject *arg);                       /* dlpack.c */
PyObject *tj_dl_set_strict(PyObject *m, PyObject *arg);                        /* dlpack.c */
PyObject *tj_ag_scan(PyObject *m, PyObject *const *args, Py_ssize_t nargs);     /* ad/torch_route.c */
PyObject *tj_ag_forward(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_ag_unit(PyObject *m, PyObject *t);
PyObject *tj_ag_layout(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_ag_backward_method(PyObject *m, PyObject *cls);
int tj_ag_init(tj_state *st);
PyObject *tj_py_vmath(PyObject *self, PyObject *args);        /* emit/vmath_eval.c */

static struct PyModuleDef module_def;

tj_state *tj_state_of(PyObject *module) { return PyModule_GetState(module); }

tj_state *tj_state_of_type(PyTypeObject *tp) {
    PyObject *m = PyType_GetModuleByDef(tp, &module_def);
    return m ? PyModule_GetState(m) : NULL;
}

PyObject *tj_internal_error(tj_state *st, const char *fmt, ...) {
    va_list va;
    va_start(va, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    if (msg) {
        PyErr_Format(st->InternalError, "%U (this is a bug in tracejit; please report it)", msg);
        Py_DECREF(msg);
    }
    return NULL;
}

long long tj_env_int(const char *name, long long dflt) {
    const char *v = getenv(name);
    return v && *v ? strtoll(v, NULL, 10) : dflt;
}

/* Unset, empty or 0: quiet; a number: that level; anything else ("yes"): level 1. */
int tj_debug_level(void) {
    const char *v = getenv("TRACEJIT_DEBUG");
    if (!v || !*v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    return end == v ? 1 : n < 0 ? 0 : n > 9 ? 9 : (int)n;
}

void tj_debug_write(PyObject *text) {
    PyObject *err = PySys_GetObject("stderr");
    if (err && text) PyFile_WriteObject(text, err, Py_PRINT_RAW);
    PyErr_Clear();
}

/* op_table() -> list of dicts, one per elementwise op: what the tests iterate. */
static PyObject *op_table(PyObject *m, PyObject *unused) {
    PyObject *list = PyList_New(0);
    for (int op = 0; list && op < TJ_NOPS; op++) {
        const tj_opinfo *o = &tj_ops[op];
        if (o->kind != TJ_K_EW || !o->numpy) continue;
        PyObject *dts = PyList_New(0);
        for (int d = 0; dts && d < TJ_NDTYPES; d++) {
            if (!(o->mask >> d & 1)) continue;
            PyObject *s = PyUnicode_FromString(tj_dtype_name(d));
            if (!s || PyList_Append(dts, s) < 0) Py_CLEAR(dts);
            Py_XDECREF(s);
        }
        PyObject *e = dts ? Py_BuildValue("{s:s,s:s,s:i,s:O,s:s}", "name", o->name, "numpy",
                                          o->numpy, "arity", o->arity, "dtypes", dts, "out",
                                          o->out == TJ_O_BOOL ? "bool" : "same")
                          : NULL;
        Py_XDECREF(dts);
        if (!e || PyList_Append(list, e) < 0) Py_CLEAR(list);
        Py_XDECREF(e);
    }
    return list;
}

static PyObject *libtcc_path(PyObject *m, PyObject *unused) {
    const char *p = tj_tcc_path();
    return p ? PyUnicode_FromString(p) : Py_NewRef(Py_None);
}

/* _backend_compiles() -> int: compiles any backend was asked for since import (tests). */
static PyObject *backend_compiles(PyObject *m, PyObject *unused) {
    return PyLong_FromLongLong(tj_backend_compiles());
}

/* _compile_source(src): compiles C with libtcc and discards it (tests of the backend). */
static PyObject *compile_source(PyObject *m, PyObject *src) {
    const char *s = PyUnicode_AsUTF8(src);
    if (!s) return NULL;
    tj_module *mod = tj_tcc_compile(tj_state_of(m), s, NULL, NULL);
    if (!mod) return NULL;
    tj_tcc_free(mod);
    Py_RETURN_NONE;
}

static void program_free(PyObject *capsule) {
    tj_tcc_free(PyCapsule_GetPointer(capsule, "tracejit.program"));
}

/* _tcc_program(source, names) -> (capsule, addresses): C compiled in memory by libtcc
 * with the primitives (tracejit.load's programs); the code lives as long as the capsule. */
static PyObject *tcc_program(PyObject *m, PyObject *args) {
    const char *src;
    PyObject *names;
    if (!PyArg_ParseTuple(args, "sO!:_tcc_program", &src, &PyTuple_Type, &names)) return NULL;
    int n = (int)PyTuple_GET_SIZE(names);
    const char *nm[16];
    void *addr[16];
    if (n > 16) return PyErr_Format(PyExc_ValueError, "_tcc_program: at most 16 names");
    for (int i = 0; i < n; i++)
        if (!(nm[i] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, i)))) return NULL;
    tj_module *mod = tj_tcc_compile_program(tj_state_of(m), src, nm, addr, n);
    if (!mod) return NULL;
    PyObject *cap = PyCapsule_New(mod, "tracejit.program", program_free);
    if (!cap) { tj_tcc_free(mod); return NULL; }
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t && i < n; i++) {
        PyObject *a = PyLong_FromVoidPtr(addr[i]);
        if (!a) { Py_CLEAR(t); break; }
        PyTuple_SET_ITEM(t, i, a);
    }
    if (!t) { Py_DECREF(cap); return NULL; }
    return Py_BuildValue("(NN)", cap, t);
}

/* _load_blas(path, min_macs): use the BLAS at path for products of >= min_macs. */
static PyObject *load_blas(PyObject *m, PyObject *args) {
    const char *path;
    long long min_macs;
    if (!PyArg_ParseTuple(args, "sL:_load_blas", &path, &min_macs)) return NULL;
    tj_blas_min = min_macs;
    if (tj_blas_load(path) < 0) Py_RETURN_FALSE;
    /* TRACEJIT_NUM_THREADS, when set, is the BLAS's budget too (else its own default) */
    if (getenv("TRACEJIT_NUM_THREADS")) tj_blas_set_threads(tj_pool_threads());
    Py_RETURN_TRUE;
}

/* _load_blas_mkl(path): products call the MKL inside torch's libtorch_cpu at path
 * (only when that library is already loaded), with tracejit's thread budget. */
static PyObject *load_blas_mkl(PyObject *m, PyObject *arg) {
    (void)m;
    const char *path = PyUnicode_AsUTF8(arg);
    if (!path) return NULL;
    if (tj_blas_load_mkl(path) < 0) Py_RETURN_FALSE;
    tj_blas_set_threads(tj_pool_threads());
    Py_RETURN_TRUE;
}

/* _blas(): (the BLAS products call: "mkl", "openblas" or None, its thread budget) */
static PyObject *blas_info(PyObject *m, PyObject *unused) {
    (void)m, (void)unused;
    const char *name = tj_blas_name();
    return Py_BuildValue("(zi)", name, tj_blas_threads());
}

/* _register_impls(dict): NumPy functions implemented by Python compositions. */
static PyObject *register_impls(PyObject *m, PyObject *impls) {
    if (!PyDict_Check(impls)) {
        PyErr_SetString(PyExc_TypeError, "expected a dict");
        return NULL;
    }
    Py_XSETREF(tj_state_of(m)->py_impls, Py_NewRef(impls));
    Py_RETURN_NONE;
}

static PyObject *get_skip_dirs(PyObject *m, PyObject *unused) {
    tj_state *st = tj_state_of(m);
    return st->skip_dirs ? Py_NewRef(st->skip_dirs) : PyTuple_New(0);
}

static PyObject *set_skip_dirs(PyObject *m, PyObject *dirs) {
    if (!PyTuple_Check(dirs)) {
        PyErr_SetString(PyExc_TypeError, "expected a tuple of str");
        return NULL;
    }
    Py_XSETREF(tj_state_of(m)->skip_dirs, Py_NewRef(dirs));
    Py_RETURN_NONE;
}

static PyObject *get_num_threads(PyObject *m, PyObject *unused) {
    return PyLong_FromLong(tj_pool_threads());
}

static PyObject *set_num_threads(PyObject *m, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    int rc = n < 1 || n > 256 ? -1 : tj_pool_set_threads((int)n);
    if (rc == 0) tj_blas_set_threads((int)n);   /* one budget: the pool's and BLAS's */
    if (rc == -1) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: expected 1 to 256 threads, got %ld", n);
        return NULL;
    }
    if (rc == -2) {
        PyErr_SetString(PyExc_RuntimeError,
                        "set_num_threads: a compiled function is running on the thread pool; "
                        "call it when no compiled function runs");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *set_tier(PyObject *m, PyObject *arg) {
    const char *s = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (!s || tj_tier_set_mode(s) < 0) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError,
                         "set_tier: expected 'auto', 'eager' or 'tcc', got %R", arg);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _tier_mode() -> 'tcc', 'auto' or 'eager': set_tier's mode now (tracejit.export runs
 * the TinyCC kernel its program reproduces). */
static PyObject *tier_mode(PyObject *m, PyObject *unused) {
    int mode = tj_tier_mode();
    return PyUnicode_FromString(mode == TJ_TIER_OFF ? "tcc" : mode == TJ_TIER_EAGER ? "eager"
                                                                                    : "auto");
}

/* _blas_min(n) -> the previous value: products of at least n multiply-adds call the
 * loaded BLAS (a huge n: the portable GEMM only, as an exported program computes). */
static PyObject *blas_min(PyObject *m, PyObject *arg) {
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    long long prev = (long long)tj_blas_min;
    tj_blas_min = n;
    return PyLong_FromLongLong(prev);
}

/* _qgemm_isa(cap) -> (level in use, previous cap): caps the int8 GEMM's instruction
 * set (0 portable, 1 AVX2, 2 AVX-VNNI, 3 AVX-512 VNNI; csrc/emit/qgemm.c), so the tests
 * compare every path the CPU has; -1 leaves the cap and only reports. */
static PyObject *qgemm_isa(PyObject *m, PyObject *arg) {
    long cap = PyLong_AsLong(arg);
    if (cap == -1 && PyErr_Occurred()) return NULL;
    int prev = tj_qgemm_cap(3);
    tj_qgemm_cap(cap < 0 ? prev : (int)cap);
    return Py_BuildValue("(ii)", tj_qgemm_level(), prev);
}

/* _incremental_values(flag) -> the previous flag: whether a value Python reads while
 * tracing starts from the values computed before it (prefix.c; off: the whole prefix
 * each time, as before: benchmarks compare both). */
static PyObject *incremental_values(PyObject *m, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    int prev = tj_prefix_incremental;
    tj_prefix_incremental = on;
    return PyBool_FromLong(prev);
}

/* _prefix_nodes() -> int: the nodes of every graph compiled for a value Python read while
 * tracing, since import (tests: linear, not quadratic, in a Python loop's steps). */
static PyObject *prefix_nodes(PyObject *m, PyObject *unused) {
    return PyLong_FromLongLong(tj_prefix_nodes);
}

static PyObject *set_include_dir(PyObject *m, PyObject *arg) {
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s) return NULL;
    tj_tier_set_include(s);
    tj_cuda_set_include(s);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"set_tier", set_tier, METH_O, "choose when kernels are recompiled by the system compiler"},
    {"_tier_mode", tier_mode, METH_NOARGS, "set_tier's mode now"},
    {"_qgemm_isa", qgemm_isa, METH_O, "_qgemm_isa(cap) -> (level, previous cap) of the int8 GEMM"},
    {"_blas_min", blas_min, METH_O, "_blas_min(n) -> previous: the size from which products call BLAS"},
    {"_set_include_dir", set_include_dir, METH_O, "where the optimizing tier's headers are"},
    {"_prefix_nodes", prefix_nodes, METH_NOARGS,
     "_prefix_nodes() -> nodes compiled for values read while tracing, since import"},
    {"_incremental_values", incremental_values, METH_O,
     "_incremental_values(flag) -> previous: values read while tracing start from earlier ones"},
    /* the CUDA backend's pieces, for its tests (csrc/backend/cuda_api.c) */
    {"_nvrtc_compile", tj_py_nvrtc_compile, METH_VARARGS,
     "_nvrtc_compile(source, cc) -> (image, log, is_ptx): CUDA C++ through NVRTC"},
    {"_nvrtc_version", tj_py_nvrtc_version, METH_NOARGS, "_nvrtc_version() -> (major, minor, path)"},
    {"_cublas", tj_py_cublas, METH_NOARGS, "_cublas() -> (path, None) or (None, why not)"},
    {"_cublas_map", tj_py_cublas_map, METH_VARARGS,
     "_cublas_map(M, N, K, am, ak, bk, bn, cm, cn) -> cuBLAS's operands, or None"},
    {"_cublas_resolve", tj_py_cublas_resolve, METH_VARARGS,
     "_cublas_resolve(gemm, params, n_slots, nd) -> (first elements, strides, map) or None"},
    {"_cuda_device", tj_py_cuda_device, METH_O,
     "_cuda_device(ordinal) -> (name, cc major, cc minor, multiprocessors)"},
    {"_cuda_run", tj_py_cuda_run, METH_VARARGS,
     "_cuda_run(ordinal, image, kernels, params, stream): launch and wait (tests)"},
    {"get_num_threads", get_num_threads, METH_NOARGS, "threads that large kernels use"},
    {"set_num_threads", set_num_threads, METH_O, "set the threads that large kernels use"},
    {"op_table", op_table, METH_NOARGS, "op_table() -> list of dicts describing elementwise ops"},
    {"_op_table", tj_py_op_table, METH_NOARGS, "_op_table() -> every op's columns, as tuples"},
    {"_test_mark_effect", tj_py_test_mark_effect, METH_O,
     "_test_mark_effect(name or None): treat that op as having an effect (testing hook)"},
    {"libtcc_path", libtcc_path, METH_NOARGS, "path of the loaded libtcc, or None"},
    {"_tcc_program", tcc_program, METH_VARARGS,
     "_tcc_program(source, names) -> (capsule, addresses): C compiled in memory (tracejit.load)"},
    {"_compile_source", compile_source, METH_O, "compile C source with libtcc (testing hook)"},
    {"_backend_compiles", backend_compiles, METH_NOARGS,
     "compiles any backend was asked for since import (testing hook)"},
    {"_vmath", tj_py_vmath, METH_VARARGS, "_vmath(name, out, x[, y]): a vmath.h function (testing hook)"},
    {"_load_blas", load_blas, METH_VARARGS, "use NumPy's BLAS for large products"},
    {"_blas", blas_info, METH_NOARGS, "the BLAS products call and its threads"},
    {"_load_blas_mkl", load_blas_mkl, METH_O, "use the MKL inside torch (once loaded) for products"},
    {"_register_impls", register_impls, METH_O, "NumPy functions implemented in Python"},
    {"_ew", (PyCFunction)(void (*)(void))tj_torch_ew, METH_FASTCALL,
     "_ew(name, *operands): the elementwise op `name` of the op table on tracers"},
    {"_register_torch", tj_torch_register, METH_VARARGS, "torch-named tracer attributes"},
    {"_register_complex", tj_complex_register, METH_VARARGS,
     "_register_complex(cls, call, op): complex values as pairs of real tracers"},
    {"_register_effects", tj_effects_register, METH_O,
     "_register_effects(make): make() lists module attributes swapped for wrappers while "
     "tracing"},
    {"_tracing", tj_effects_tracing, METH_NOARGS, "whether a trace runs on this thread"},
    {"_iota", tj_trace_iota, METH_VARARGS, "_iota(shape, axis): the element index, while tracing"},
    {"_capture", tj_trace_capture, METH_O,
     "_capture(array): a NumPy array as the running trace's captured leaf, a tracer"},
    {"_loop_begin", (PyCFunction)(void (*)(void))tj_py_loop_begin, METH_FASTCALL,
     "_loop_begin(anchor, inits, xs): a compiled loop's placeholders (csrc/loops.c)"},
    {"_loop_end", (PyCFunction)(void (*)(void))tj_py_loop_end, METH_FASTCALL,
     "_loop_end(anchor, start, kind, n, reverse, inits, xs, carries, ys[, info]): its results"},
    {"_loop_anchor", tj_py_loop_anchor, METH_NOARGS,
     "_loop_anchor(): a Tracer of the running trace, or None"},
    {"_loop_info", tj_py_loop_info, METH_O,
     "_loop_info(tracer): the compiled loop a result comes from (its backward), or None"},
    {"_lift", (PyCFunction)(void (*)(void))tj_torch_lift, METH_FASTCALL,
     "_lift(tracer, tensor): a real tensor as a tracer of tracer's trace"},
    {"_random", (PyCFunction)(void (*)(void))tj_trace_random, METH_FASTCALL,
     "_random(kind, shape, dtype, source, keyfn) -> Tracer: a draw of a random op (csrc/trace/random.c)"},
    {"_same_value", (PyCFunction)(void (*)(void))tj_py_same_value, METH_FASTCALL,
     "_same_value(a, b): whether two tracers compute the same value (csrc/ir/graph.c)"},
    {"_sample", (PyCFunction)(void (*)(void))tj_trace_sample, METH_FASTCALL,
     "_sample(kind, shape, dtype, source, keyfn, *params): a rejection sampler's draws "
     "(gamma, poisson, binomial) inside a trace"},
    {"_check", (PyCFunction)(void (*)(void))tj_trace_check, METH_FASTCALL,
     "_check(x, what[, error]): in a trace, all(x) assumed True and checked at every call"},
    {"_full", (PyCFunction)(void (*)(void))tj_trace_full, METH_FASTCALL,
     "_full(shape, dtype, value) -> Tracer: a filled array of the current trace"},
    {"_trace_error", tj_torch_trace_error, METH_O, "raise TraceError(msg) at the user's line"},
    {"_stand_in", (PyCFunction)(void (*)(void))tj_torch_stand_in, METH_FASTCALL,
     "_stand_in(tensor, tracer): the current trace reads the real tensor as the tracer"},
    {"_stood_in_for", tj_torch_stood_in_for, METH_O,
     "_stood_in_for(tracer): the real tensor the trace reads as the tracer, or None"},
    {"_note_made", tj_torch_note_made, METH_O,
     "_note_made(tensor): torch made it while the current trace runs (never written back)"},
    {"_trace_device", tj_py_trace_device, METH_NOARGS,
     "_trace_device() -> 'cpu' or 'cuda:k': the current trace's device"},
    {"_strided_view", (PyCFunction)(void (*)(void))tj_py_strided_view, METH_FASTCALL,
     "_strided_view(x, shape, coefs, offs, readonly): a strided view of tracer x"},
    {"_assign", (PyCFunction)(void (*)(void))tj_torch_assign, METH_FASTCALL,
     "_assign(x, value, what): an in-place write of value into tracer x (returns x)"},
    {"_discard_writes", tj_write_set_discard, METH_O,
     "_discard_writes(on) -> previous: traces begun while on write nothing back (autograd)"},
    {"_strict_captures", tj_dl_set_strict, METH_O,
     "_strict_captures(on) -> previous: refuse captured tensors requiring grad (autograd)"},
    {"_ag_scan", (PyCFunction)(void (*)(void))tj_ag_scan, METH_FASTCALL,
     "_ag_scan(entries, args, kwargs, static_type) -> (entry, key, diff, other): autograd"},
    {"_ag_layout", (PyCFunction)(void (*)(void))tj_ag_layout, METH_FASTCALL,
     "_ag_layout(args, kwargs, static_type) -> (diff_pos, other_pos, statics): autograd"},
    {"_ag_forward", (PyCFunction)(void (*)(void))tj_ag_forward, METH_FASTCALL,
     "_ag_forward(ctx, (entry, diff, other), *diff) -> value: the fused autograd node's forward"},
    {"_ag_unit", tj_ag_unit, METH_O, "_ag_unit(t) -> bool: t is a one-element tensor equal to 1"},
    {"_ag_backward_method", tj_ag_backward_method, METH_O,
     "_ag_backward_method(cls) -> the fused node's backward as cls.apply (C)"},
    {"_torch_alloc", tj_dl_torch_alloc, METH_O,
     "_torch_alloc(mode) -> previous: how torch results are allocated (benchmarks)"},
    {"_skip_dirs", get_skip_dirs, METH_NOARGS, "the directories whose frames are not the user's"},
    {"_set_skip_dirs", set_skip_dirs, METH_O,
     "directories whose frames are not the user's code in error locations"},
    {NULL},
};

static PyStructSequence_Field cache_info_fields[] = {
    {"hits", "calls answered by a compiled variant"},
    {"misses", "calls that traced and compiled"},
    {"variants", "compiled variants held"},
    {"compile_time", "seconds spent tracing, optimizing and compiling"},
    {"last_retrace", "why the latest retrace happened, or None"},
    {"guards", "per variant (most recently used first), what each of its guards assumes"},
    {"eager_calls", "calls run eagerly: past max_variants, or a variant its own first call "
                    "could not use"},
    {NULL},
};
static PyStructSequence_Desc cache_info_desc = {
    "tracejit.CacheInfo",
    "f.cache_info(): how a compiled function's cache has served its calls. A variant is one\n"
    "compiled plan, for one key (the arguments' dtypes, shapes, layouts, devices and static\n"
    "values) and the guards its trace needs (Python values it read as constants, captured\n"
    "arrays' shapes); last_retrace says what changed at the latest miss.",
    cache_info_fields, 5};

static int module_exec(PyObject *m) {
    tj_state *st = PyModule_GetState(m);
    if (PyArray_ImportNumPyAPI() < 0) return -1;
    st->numpy = PyImport_ImportModule("numpy");
    if (!st->numpy) return -1;
    st->ndarray_type = Py_NewRef((PyObject *)&PyArray_Type);
    st->py_int = Py_NewRef((PyObject *)&PyLong_Type);
    st->py_float = Py_NewRef((PyObject *)&PyFloat_Type);
    for (int d = 0; d < TJ_NDTYPES; d++)
        if (!(st->dtypes[d] = (PyObject *)PyArray_DescrFromType(tj_dtype_typenum(d)))) return -1;
    st->TracejitError = PyErr_NewExceptionWithDoc("tracejit.TracejitError",
                                                  "Base class of tracejit's errors.", NULL, NULL);
    if (!st->TracejitError) return -1;
    st->TraceError = PyErr_NewExceptionWithDoc(
        "tracejit.TraceError", "The function does something a trace cannot represent.",
        st->TracejitError, NULL);
    st->CompileError = PyErr_NewExceptionWithDoc(
        "tracejit.CompileError", "Generated code failed to compile; .source has it, numbered.",
        st->TracejitError, NULL);
    st->InternalError = PyErr_NewExceptionWithDoc(
        "tracejit.InternalError", "An invariant of tracejit broke: a bug in tracejit.",
        st->TracejitError, NULL);
    if (!st->TraceError || !st->CompileError || !st->InternalError) return -1;
    if (PyModule_AddObjectRef(m, "TracejitError", st->TracejitError) < 0 ||
        PyModule_AddObjectRef(m, "TraceError", st->TraceError) < 0 ||
        PyModule_AddObjectRef(m, "CompileError", st->CompileError) < 0 ||
        PyModule_AddObjectRef(m, "InternalError", st->InternalError) < 0)
        return -1;
    st->CacheInfoType = PyStructSequence_NewType(&cache_info_desc);
    if (!st->CacheInfoType || PyModule_AddObjectRef(m, "CacheInfo", (PyObject *)st->CacheInfoType) < 0)
        return -1;
    if (tj_tracer_types_init(m, st) < 0 || tj_function_type_init(m, st) < 0) return -1;
    if (tj_protocols_init(st) < 0 || tj_pytree_init(m, st) < 0) return -1;
    if (tj_ad_init(m) < 0 || tj_ag_init(st) < 0) return -1;
    if (PyModule_AddIntConstant(m, "BLOCK", TJ_BLOCK) < 0) return -1;
    return tj_tcc_load();
}

/* Every Python object the state holds (types as objects), in one list that traverse and
 * clear both walk, so that the two cannot disagree. Returns how many. */
#define STATE_MAX_OBJECTS (64 + TJ_NOPS + 2 * TJ_NDTYPES)
static int state_objects(tj_state *st, PyObject **out[STATE_MAX_OBJECTS]) {
    PyObject **named[] = {
        &st->TracejitError, &st->TraceError, &st->CompileError, &st->InternalError,
        (PyObject **)&st->TracerType, (PyObject **)&st->TraceType,
        (PyObject **)&st->FunctionType, (PyObject **)&st->CacheInfoType,
        (PyObject **)&st->TreeDefType, &st->defaultdict_type, &st->simplens_type, &st->tree_star,
        &st->numpy, &st->ndarray_type, &st->ufunc_ops, &st->array_funcs, &st->py_impls,
        &st->py_int, &st->py_float, &st->skip_dirs, &st->torch_attrs, &st->trace_call,
        &st->effects, &st->effects_make, &st->autograd_call, &st->grad_capture_error,
        &st->complex_cls, &st->complex_call, &st->complex_op,
        (PyObject **)&st->torch_tensor, &st->torch_grad_enabled, &st->torch_from_numpy,
        &st->torch_empty, &st->torch_get_default_dtype, &st->torch_bump,
        &st->ag_mark_diff, &st->ag_mark_other, &st->ag_str_autograd,
        &st->ag_str_fast, &st->ag_str_mixed, &st->ag_str_value_and_grad, &st->ag_str_grads,
        &st->ag_str_job, &st->ag_str_mark_nd, &st->ag_str_dict, &st->ag_not_scalar,
        &st->ag_str_train, &st->ag_str_step,
        &st->ag_fused_backward,
    };
    _Static_assert(sizeof named / sizeof named[0] <= 64, "raise STATE_MAX_OBJECTS");
    int n = 0;
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) out[n++] = named[i];
    for (int op = 0; op < TJ_NOPS; op++) out[n++] = &st->ufunc_of[op];
    for (int d = 0; d < TJ_NDTYPES; d++) out[n++] = &st->dtypes[d];
    for (int d = 0; d < TJ_NDTYPES; d++) out[n++] = &st->torch_dtypes[d];
    return n;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    PyObject **objs[STATE_MAX_OBJECTS];
    int n = state_objects(PyModule_GetState(m), objs);
    for (int i = 0; i < n; i++) Py_VISIT(*objs[i]);
    return 0;
}

static int module_clear(PyObject *m) {
    PyObject **objs[STATE_MAX_OBJECTS];
    int n = state_objects(PyModule_GetState(m), objs);
    for (int i = 0; i < n; i++) Py_CLEAR(*objs[i]);
    return 0;
}

static void module_free(void *m) { module_clear(m); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "tracejit._C",
    "tracejit's C core: tracer, graph passes, code generation, libtcc backend, runtime.",
    sizeof(tj_state), module_methods, module_slots, module_traverse, module_clear, module_free,
};

PyMODINIT_FUNC PyInit__C(void) { return PyModuleDef_Init(&module_def); }
