/* Tensors of other libraries, read in place through DLPack: torch tensors through
 * torch's C exchange table (`__dlpack_c_exchange_api__`: a DLTensor view in tens of
 * nanoseconds, no Python call, no reference to release), any other producer of
 * `__dlpack__` through numpy.from_dlpack (a zero-copy ndarray). Torch results are
 * allocated by torch's own allocator through the same table.
 * Contract: torch is never imported here: its Tensor type is found in sys.modules the
 * first time an unknown object arrives; nothing is copied; a tensor that cannot be
 * read faithfully (dtype, device, requires grad while grad mode is on) is refused. */
#include "tracejit.h"
#include <stdatomic.h>
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* The parts of dlpack.h (v1.x, Apache-2.0) this file uses; the layout is the ABI. */
typedef struct { int32_t device_type, device_id; } DLDevice;
typedef struct { uint8_t code, bits; uint16_t lanes; } DLDataType;
typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape, *strides;
    uint64_t byte_offset;
} DLTensor;
typedef struct { uint32_t major, minor; } DLPackVersion;
typedef struct DLManagedTensorVersioned {
    DLPackVersion version;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *self);
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;
typedef struct DLPackExchangeAPI {
    DLPackVersion version;
    void *prev_api;
    int (*allocator)(DLTensor *proto, DLManagedTensorVersioned **out, void *ctx,
                     void (*set_error)(void *ctx, const char *kind, const char *msg));
    int (*from_py)(void *obj, DLManagedTensorVersioned **out);
    int (*to_py)(DLManagedTensorVersioned *t, void **out);
    int (*dltensor_from_py)(void *obj, DLTensor *out);
    int (*current_stream)(int32_t device_type, int32_t device_id, void **out);
} DLPackExchangeAPI;
enum { kDLCPU = 1, kDLCUDA = 2, kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLBool = 6 };

/* torch's Tensor type, dtypes and functions live in the module state (torch_*), found
 * once, and beside them the C pointers read from them: the exchange table
 * (st->torch_api) and TensorBase.requires_grad's C getter. They point into torch's own
 * library, which is never unloaded; they are used only once st->torch_tensor is set. */

/* Looks torch up in sys.modules (never importing it). 1 found, 0 not, -1 error. */
static int find_torch(tj_state *st) {
    if (st->torch_tensor) return 1;
    PyObject *name = PyUnicode_FromString("torch");
    if (!name) return -1;
    PyObject *torch = PyImport_GetModule(name);
    Py_DECREF(name);
    if (!torch) return PyErr_Occurred() ? -1 : 0;
    
    PyObject *tensor = PyObject_GetAttrString(torch, "Tensor");
    PyObject *cap = tensor ? PyObject_GetAttrString(tensor, "__dlpack_c_exchange_api__") : NULL;
    const DLPackExchangeAPI *api = cap ? PyCapsule_GetPointer(cap, "dlpack_exchange_api") : NULL;
    Py_XDECREF(cap);
    PyObject *grad = api ? PyObject_GetAttrString(torch, "is_grad_enabled") : NULL;
    int ok = grad && PyType_Check(tensor) && api->version.major == 1 && api->dltensor_from_py &&
             api->allocator && api->to_py;
    for (int d = 0; ok && d < TJ_NDTYPES; d++)
        ok = (st->torch_dtypes[d] = PyObject_GetAttrString(torch, tj_dtype_name(d))) != NULL;
    /* requires_grad is read at every call, through its getset's C function rather than
     * a generic attribute lookup (t.requires_grad from Python measured ~70 ns) */
    PyObject *rg = NULL;
    for (Py_ssize_t i = 0; ok && !rg && i < PyTuple_GET_SIZE(((PyTypeObject *)tensor)->tp_mro); i++) {
        PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(((PyTypeObject *)tensor)->tp_mro, i);
        rg = base->tp_dict ? PyDict_GetItemString(base->tp_dict, "requires_grad") : NULL;
    }
    ok = ok && rg && Py_IS_TYPE(rg, &PyGetSetDescr_Type) &&
         ((PyGetSetDescrObject *)rg)->d_getset->get;
    if (ok) {
        st->requires_grad_get = ((PyGetSetDescrObject *)rg)->d_getset->get;
        st->requires_grad_closure = ((PyGetSetDescrObject *)rg)->d_getset->closure;
    }
    Py_DECREF(torch);
    if (!ok) {
        for (int d = 0; d < TJ_NDTYPES; d++) Py_CLEAR(st->torch_dtypes[d]);
        Py_XDECREF(tensor);
        Py_XDECREF(grad);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ImportError, "this torch offers no DLPack C exchange API "
                            "(torch.Tensor.__dlpack_c_exchange_api__); tracejit needs torch >= 2.11");
        return -1;
    }
    st->torch_tensor = (PyTypeObject *)tensor;
    st->torch_api = api;
    Py_XSETREF(st->torch_grad_enabled, grad);   /* ad/torch_route.c may have found it */
    return 1;
}

int tj_dl_kind(tj_state *st, PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o), *torch_tensor = st->torch_tensor;
    if (torch_tensor && (tp == torch_tensor || PyType_IsSubtype(tp, torch_tensor)))
        return TJ_LIB_TORCH;
    if (tp == &PyArray_Type || tp == &PyFloat_Type || tp == &PyLong_Type) return 0;
    if (!torch_tensor) {
        const char *n = tp->tp_name;
        /* "torch.Tensor", "torch.nn.parameter.Parameter", or a subclass of them */
        PyObject *mro = tp->tp_mro;
        for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); i++) {
            n = ((PyTypeObject *)PyTuple_GET_ITEM(mro, i))->tp_name;
            if (strcmp(n, "Tensor") && strcmp(n, "torch.Tensor") && strcmp(n, "TensorBase") &&
                strcmp(n, "torch._C.TensorBase"))
                continue;
            int found = find_torch(st);
            if (found < 0) { PyErr_Clear(); break; }
            if (found && PyType_IsSubtype(tp, st->torch_tensor)) return TJ_LIB_TORCH;
            break;
        }
    }
    int has = PyObject_HasAttrString(o, "__dlpack__");
    return has > 0 ? TJ_LIB_DLPACK : 0;
}

static int dtype_of(DLDataType t) {
    if (t.lanes != 1) return -1;
    if (t.code == kDLBool && t.bits == 8) return TJ_BOOL;
    if (t.code == kDLInt && t.bits == 8) return TJ_I8;
    if (t.code == kDLInt && t.bits == 16) return TJ_I16;
    if (t.code == kDLInt && t.bits == 32) return TJ_I32;
    if (t.code == kDLInt && t.bits == 64) return TJ_I64;
    if (t.code == kDLUInt && t.bits == 8) return TJ_U8;
    if (t.code == kDLFloat && t.bits == 32) return TJ_F32;
    if (t.code == kDLFloat && t.bits == 64) return TJ_F64;
    return -1;   /* torch's uint16/32/64: torch itself implements few ops on them */
}

/* A compiled function's arguments that require grad go through torch.autograd
 * (_torch_autograd.py); elsewhere (captures, explain) this is the refusal. */
/* A parameter read inside torch.no_grad() (captured then), whose plan is built or
 * replayed with grad mode on: grad mode switched inside the function. */
const char tj_dl_why_no_grad_read[] = "the traced function reads a tensor that requires "
    "grad (a module's parameter) inside torch.no_grad() and is called with grad mode on: "
    "tracejit does not follow grad mode switched inside a compiled function yet; call the "
    "whole function under torch.no_grad() instead";
const char tj_dl_why_grad[] = "requires grad while grad mode is on: only arguments of a "
    "compiled function (and a compiled module's parameters) take part in torch.autograd; "
    "pass it as an argument, call under torch.no_grad(), or pass x.detach()";

/* Set (per thread) while _torch_autograd runs compiled pieces with grad mode off: a
 * captured tensor that requires grad would get no gradient, so it is refused. */
static _Thread_local int strict_captures;

PyObject *tj_dl_set_strict(PyObject *m, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    int old = strict_captures;
    strict_captures = on;
    return PyBool_FromLong(old);
}

int tj_dl_strict_refuses(tj_state *st, PyObject *o) {
    if (!strict_captures || !st->requires_grad_get) return 0;
    PyObject *rg = st->requires_grad_get(o, st->requires_grad_closure);
    if (!rg) { PyErr_Clear(); return 0; }
    Py_DECREF(rg);
    return rg == Py_True;
}

int tj_dl_write_check(tj_state *st, PyObject *o) {
    PyObject *rg = st->requires_grad_get ? st->requires_grad_get(o, st->requires_grad_closure)
                                         : PyObject_GetAttrString(o, "requires_grad");
    if (!rg) return -1;
    Py_DECREF(rg);
    if (rg != Py_True) return 0;
    PyObject *on = strict_captures ? Py_NewRef(Py_True)
                                   : PyObject_CallNoArgs(st->torch_grad_enabled);
    if (!on) return -1;
    Py_DECREF(on);
    if (on != Py_True) return 0;     /* under torch.no_grad(): eager writes it too */
    PyObject *leaf = PyObject_GetAttrString(o, "is_leaf");
    if (!leaf) return -1;
    Py_DECREF(leaf);
    if (leaf == Py_True)
        PyErr_SetString(PyExc_RuntimeError, "a leaf Variable that requires grad is being used "
                        "in an in-place operation.");
    else
        PyErr_SetString(PyExc_RuntimeError, "tracejit: the compiled function writes in place "
                        "into a tensor that requires grad, which its autograd route does not "
                        "differentiate through: write into a tensor that does not require "
                        "grad, or compute a new one (x = x + v)");
    return -1;
}

int tj_dl_bump_versions(tj_state *st, PyObject *const *o, int n) {
    if (!st->torch_bump) {
        PyObject *c = PyImport_ImportModule("torch._C");
        st->torch_bump = c ? PyObject_GetAttrString(c, "_increment_version") : NULL;
        Py_XDECREF(c);
        if (!st->torch_bump) return -1;
    }
    PyObject *all = PyTuple_New(n);
    for (int i = 0; all && i < n; i++) PyTuple_SET_ITEM(all, i, Py_NewRef(o[i]));
    PyObject *r = all ? PyObject_CallOneArg(st->torch_bump, all) : NULL;
    Py_XDECREF(all);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* A refusal naming the tensor's attribute `attr` (its dtype, device or layout): `fmt`
 * with its repr for %s, in a per-thread buffer (errors only). */
static const char *refusal(PyObject *o, const char *attr, const char *fmt) {
    static _Thread_local char buf[400];
    PyObject *a = PyObject_GetAttrString(o, attr);
    PyObject *r = a ? PyObject_Str(a) : NULL;
    const char *c = r ? PyUnicode_AsUTF8(r) : NULL;
    snprintf(buf, sizeof buf, fmt, c ? c : "?");
    PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(a);
    return buf;
}

int tj_dl_torch_view(tj_state *st, PyObject *o, tj_dlview *v, const char **why) {
    DLTensor t;
    if (st->torch_api->dltensor_from_py(o, &t) < 0) {
        /* no DLPack view: a sparse or meta tensor, say. torch's own error is a C++ one */
        PyErr_Clear();
        PyObject *layout = PyObject_GetAttrString(o, "layout");
        PyObject *ls = layout ? PyObject_Str(layout) : NULL;
        int strided = ls && PyUnicode_CompareWithASCIIString(ls, "torch.strided") == 0;
        Py_XDECREF(ls);
        Py_XDECREF(layout);
        PyErr_Clear();
        *why = strided ? refusal(o, "device", "is on device '%s', which has no data "
                                 "tracejit can read (tracejit runs on CPU and CUDA tensors)")
                       : refusal(o, "layout", "has layout %s; tracejit reads dense "
                                 "(torch.strided) tensors only: pass x.to_dense()");
        return 1;
    }
    if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDA) {
        *why = refusal(o, "device", "is on device '%s'; tracejit runs on the CPU and on "
                       "CUDA GPUs: pass x.cpu()");
        return 1;
    }
    v->device = (int)t.device.device_type;
    v->device_id = (int)t.device.device_id;
    if ((v->dtype = dtype_of(t.dtype)) < 0) {
        *why = refusal(o, "dtype", "has dtype %s, which tracejit does not support yet "
                       "(supported: " TJ_SUPPORTED_TORCH_DTYPES ")");
        return 1;
    }
    if (t.ndim > TJ_MAXDIM) {
        *why = "has more than 16 dimensions";
        return 1;
    }
    PyObject *rg = st->requires_grad_get(o, st->requires_grad_closure);
    if (!rg) return -1;
    Py_DECREF(rg);
    if (rg == Py_True) {
        PyObject *on = PyObject_CallNoArgs(st->torch_grad_enabled);
        if (!on) return -1;
        Py_DECREF(on);
        if (on == Py_True) {
            *why = tj_dl_why_grad;
            return 1;
        }
    }
    int64_t size = tj_dtype_size(v->dtype), expect = size;
    v->data = (char *)t.data + t.byte_offset;
    v->ndim = t.ndim;
    v->shape = t.shape;
    v->contig = 1;
    for (int d = t.ndim - 1; d >= 0; d--) {
        int64_t step = t.strides ? t.strides[d] : expect / size;
        v->strides[d] = step * size;
        if (t.shape[d] != 1 && step * size != expect) v->contig = 0;
        expect *= t.shape[d];
    }
    if (expect == 0) v->contig = 1;
    return 0;
}

/* A torch tensor for _torch_autograd's scan (csrc/ad/torch_route.c): 1 a float32 or
 * float64 CPU or CUDA tensor that requires grad, 2 one on another device, 0 any other;
 * -1 + exception. */
int tj_dl_grad_leaf(tj_state *st, PyObject *o) {
    PyObject *rg = st->requires_grad_get(o, st->requires_grad_closure);
    if (!rg) return -1;
    Py_DECREF(rg);
    if (rg != Py_True) return 0;
    DLTensor t;
    if (st->torch_api->dltensor_from_py(o, &t) == 0) {
        int dt = dtype_of(t.dtype);
        if (dt != TJ_F32 && dt != TJ_F64) return 0;
        return t.device.device_type == kDLCPU || t.device.device_type == kDLCUDA ? 1 : 2;
    }
    PyErr_Clear();   /* a layout DLPack cannot describe: its attributes decide */
    PyObject *dt = PyObject_GetAttrString(o, "dtype");
    PyObject *cpu = dt ? PyObject_GetAttrString(o, "is_cpu") : NULL;
    PyObject *cuda = cpu ? PyObject_GetAttrString(o, "is_cuda") : NULL;
    int r = !cuda ? -1 : dt != st->torch_dtypes[TJ_F32] && dt != st->torch_dtypes[TJ_F64] ? 0
                       : cpu == Py_True || cuda == Py_True ? 1 : 2;
    Py_XDECREF(cuda);
    Py_XDECREF(dt);
    Py_XDECREF(cpu);
    return r;
}

/* 1 when o is a torch tensor with one element, float32 or float64 on the CPU, equal
 * to 1; 0 otherwise (no exception). */
int tj_dl_is_one(tj_state *st, PyObject *o) {
    DLTensor t;
    if (tj_dl_kind(st, o) != TJ_LIB_TORCH) return 0;
    if (st->torch_api->dltensor_from_py(o, &t) < 0) { PyErr_Clear(); return 0; }
    int64_t n = 1;
    for (int d = 0; d < t.ndim; d++) n *= t.shape[d];
    if (n != 1 || t.device.device_type != kDLCPU) return 0;
    const char *p = (const char *)t.data + t.byte_offset;
    int dt = dtype_of(t.dtype);
    return dt == TJ_F32 ? *(const float *)p == 1.0f : dt == TJ_F64 ? *(const double *)p == 1.0 : 0;
}

PyObject *tj_dl_to_numpy(tj_state *st, PyObject *o) {
    return PyObject_CallMethod(st->numpy, "from_dlpack", "O", o);
}

static void set_error(void *ctx, const char *kind, const char *msg) {
    PyErr_Format(PyExc_RuntimeError, "torch could not allocate a result (%s): %s", kind, msg);
}

/* How torch results are allocated: 0 our own memory handed to torch as a
 * DLManagedTensorVersioned (exchange table's to_py), 1 an ndarray wrapped by
 * torch.from_numpy, 2 torch.empty, 3 torch's allocator through the exchange table,
 * then to_py. Measured per tiny call (16 floats, two torch inputs, 2-core VM,
 * medians of 15 interleaved runs): 0: 1.36 us, 1: 1.65 us, 2: 3.2 us, 3: 1.74 us,
 * so 0 it is (benchmarks/bench_torch.py --alloc repeats the comparison). The mode is
 * st->torch_alloc_mode. */
PyObject *tj_dl_torch_alloc(PyObject *m, PyObject *arg) {
    tj_state *st = tj_state_of(m);
    long mode = PyLong_AsLong(arg);
    if (mode == -1 && PyErr_Occurred()) return NULL;
    if (mode < 0 || mode > 3) {
        PyErr_SetString(PyExc_ValueError, "_torch_alloc: mode 0, 1, 2 or 3");
        return NULL;
    }
    int old = st->torch_alloc_mode;
    st->torch_alloc_mode = (int)mode;
    return PyLong_FromLong(old);
}

static PyObject *torch_attr(const char *name) {
    PyObject *mod = PyImport_ImportModule("torch");
    PyObject *f = mod ? PyObject_GetAttrString(mod, name) : NULL;
    Py_XDECREF(mod);
    return f;
}

static PyObject *empty_slow(tj_state *st, int ndim, const int64_t *shape, int dtype,
                            void **data) {
    if (st->torch_alloc_mode == 1) {
        if (!st->torch_from_numpy && !(st->torch_from_numpy = torch_attr("from_numpy")))
            return NULL;
        PyObject *a = PyArray_EMPTY(ndim, (npy_intp *)shape, tj_dtype_typenum(dtype), 0);
        if (!a) return NULL;
        *data = PyArray_DATA((PyArrayObject *)a);
        PyObject *r = PyObject_CallOneArg(st->torch_from_numpy, a);
        Py_DECREF(a);
        return r;
    }
    if (!st->torch_empty && !(st->torch_empty = torch_attr("empty"))) return NULL;
    PyObject *sh = PyTuple_New(ndim), *kw = NULL, *r = NULL;
    for (int d = 0; sh && d < ndim; d++) {
        PyObject *v = PyLong_FromLongLong(shape[d]);
        if (!v) { Py_CLEAR(sh); break; }
        PyTuple_SET_ITEM(sh, d, v);
    }
    if (sh && (kw = Py_BuildValue("{sO}", "dtype", st->torch_dtypes[dtype]))) {
        PyObject *args = PyTuple_Pack(1, sh);
        r = args ? PyObject_Call(st->torch_empty, args, kw) : NULL;
        Py_XDECREF(args);
    }
    Py_XDECREF(sh);
    Py_XDECREF(kw);
    DLTensor t;
    if (r && st->torch_api->dltensor_from_py(r, &t) < 0) Py_CLEAR(r);
    if (r) *data = (char *)t.data + t.byte_offset;
    return r;
}

/* mode 0: our own memory handed to torch as a DLManagedTensorVersioned. One block
 * holds the header and, 64-byte aligned after it, the data. torch releases it through
 * the deleter, on any thread, with or without the GIL: blocks of up to 64 KiB then
 * wait in a small lock-free cache per power-of-two size, so a loop's results reuse
 * them instead of going through malloc for each (whose large requests consolidate
 * every small chunk torch freed meanwhile). Slots only ever hold blocks of their
 * class and are taken by exchange: a block is never read while another thread may
 * own it. Blocks of TJ_BLOCK_MIN bytes and more are NumPy results' recycled blocks
 * (csrc/blocks.c), already mapped: a fresh one cost a page fault per 4 KiB. */
typedef struct {
    DLManagedTensorVersioned mt;
    int64_t shape[TJ_MAXDIM];
    int cls;                     /* cache class, -1 none, -2 a recycled block */
    size_t cap;                  /* a recycled block's capacity */
} own_tensor;

#define OWN_HEAD ((sizeof(own_tensor) + 63) / 64 * 64)
#define OWN_MIN_LOG 8            /* classes 2^8 .. 2^16 bytes */
#define OWN_CLASSES 9
#define OWN_SLOTS 4
static void *_Atomic own_cache[OWN_CLASSES][OWN_SLOTS];

static void own_deleter(DLManagedTensorVersioned *self) {
    own_tensor *o = (own_tensor *)self;
    if (o->cls == -2) {
        tj_block_put(o, o->cap);
        return;
    }
    for (int k = 0; o->cls >= 0 && k < OWN_SLOTS; k++) {
        void *empty = NULL;
        if (atomic_compare_exchange_strong(&own_cache[o->cls][k], &empty, (void *)o)) return;
    }
    free(o);
}

static const DLDataType dl_types[TJ_NDTYPES] = {
    {kDLBool, 8, 1}, {kDLInt, 8, 1}, {kDLInt, 16, 1}, {kDLInt, 32, 1}, {kDLInt, 64, 1},
    {kDLUInt, 8, 1}, {kDLUInt, 16, 1}, {kDLUInt, 32, 1}, {kDLUInt, 64, 1},
    {kDLFloat, 32, 1}, {kDLFloat, 64, 1}, {kDLFloat, 16, 1}, {kDLBfloat, 16, 1}};

static PyObject *empty_own(tj_state *st, int ndim, const int64_t *shape, int dtype,
                           void **data) {
    size_t n = (size_t)tj_dtype_size(dtype);
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    size_t need = OWN_HEAD + (n + 63) / 64 * 64, cap = (size_t)1 << OWN_MIN_LOG;
    int cls = 0;
    while (cap < need && cls < OWN_CLASSES) cap <<= 1, cls++;
    own_tensor *o = NULL;
    size_t big = 0;
    if (need >= TJ_BLOCK_MIN && tj_block_recycling()) {
        cls = -2;
        o = tj_block_get(need, &big);
    } else if (cls < OWN_CLASSES) {
        for (int k = 0; !o && k < OWN_SLOTS; k++)
            if (atomic_load_explicit(&own_cache[cls][k], memory_order_relaxed))
                o = atomic_exchange(&own_cache[cls][k], NULL);
        if (!o) o = aligned_alloc(64, cap);
    } else {
        cls = -1;
        o = aligned_alloc(64, need);
    }
    if (!o) return PyErr_NoMemory();
    void *mem = (char *)o + OWN_HEAD;
    memset(o, 0, sizeof *o);
    memcpy(o->shape, shape, (size_t)ndim * sizeof *shape);
    o->cls = cls;
    o->cap = big;
    o->mt.version.major = 1;
    o->mt.version.minor = 0;
    o->mt.deleter = own_deleter;
    o->mt.dl_tensor = (DLTensor){mem, {kDLCPU, 0}, ndim, dl_types[dtype], o->shape, NULL, 0};
    *data = mem;
    void *obj = NULL;
    if (st->torch_api->to_py(&o->mt, &obj) < 0) return NULL;
    return (PyObject *)obj;
}

PyObject *tj_dl_torch_empty(tj_state *st, int ndim, const int64_t *shape, int dtype,
                            void **data) {
    if (st->torch_alloc_mode == 0) return empty_own(st, ndim, shape, dtype, data);
    if (st->torch_alloc_mode < 3) return empty_slow(st, ndim, shape, dtype, data);
    DLTensor proto = {NULL, {kDLCPU, 0}, ndim, dl_types[dtype], (int64_t *)shape, NULL, 0};
    DLManagedTensorVersioned *mt = NULL;
    if (st->torch_api->allocator(&proto, &mt, NULL, set_error) < 0 || !mt) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    *data = (char *)mt->dl_tensor.data + mt->dl_tensor.byte_offset;
    void *obj = NULL;
    if (st->torch_api->to_py(mt, &obj) < 0) return NULL;
    return (PyObject *)obj;
}

/* ---- CUDA tensors (the CUDA backend's results and streams) ---- */

/* torch.empty(shape, dtype=, device="cuda:<id>"): the slow way, when the exchange
 * table's allocator declines. New reference; NULL + exception. */
static PyObject *empty_cuda_slow(tj_state *st, int device_id, int ndim, const int64_t *shape,
                                 int dtype, void **data) {
    if (!st->torch_empty && !(st->torch_empty = torch_attr("empty"))) return NULL;
    PyObject *sh = PyTuple_New(ndim), *r = NULL;
    for (int d = 0; sh && d < ndim; d++) {
        PyObject *v = PyLong_FromLongLong(shape[d]);
        if (!v) { Py_CLEAR(sh); break; }
        PyTuple_SET_ITEM(sh, d, v);
    }
    PyObject *dev = PyUnicode_FromFormat("cuda:%d", device_id);
    PyObject *kw = sh && dev ? Py_BuildValue("{sOsO}", "dtype", st->torch_dtypes[dtype],
                                             "device", dev) : NULL;
    PyObject *args = kw ? PyTuple_Pack(1, sh) : NULL;
    r = args ? PyObject_Call(st->torch_empty, args, kw) : NULL;
    Py_XDECREF(args); Py_XDECREF(kw); Py_XDECREF(dev); Py_XDECREF(sh);
    DLTensor t;
    if (r && st->torch_api->dltensor_from_py(r, &t) < 0) Py_CLEAR(r);
    if (r) *data = (char *)t.data + t.byte_offset;
    return r;
}

PyObject *tj_dl_torch_empty_cuda(tj_state *st, int device_id, int ndim, const int64_t *shape,
                                 int dtype, void **data) {
    DLTensor proto = {NULL, {kDLCUDA, device_id}, ndim, dl_types[dtype], (int64_t *)shape,
                      NULL, 0};
    DLManagedTensorVersioned *mt = NULL;
    if (st->torch_api->allocator(&proto, &mt, NULL, set_error) < 0 || !mt) {
        PyErr_Clear();   /* torch.empty says what is wrong (out of memory) in its own words */
        return empty_cuda_slow(st, device_id, ndim, shape, dtype, data);
    }
    *data = (char *)mt->dl_tensor.data + mt->dl_tensor.byte_offset;
    void *obj = NULL;
    if (st->torch_api->to_py(mt, &obj) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "torch could not wrap a CUDA result");
        return NULL;
    }
    return (PyObject *)obj;
}

int tj_dl_torch_stream(tj_state *st, int device_id, void **stream) {
    *stream = NULL;
    if (st->torch_api->current_stream &&
        st->torch_api->current_stream(kDLCUDA, device_id, stream) == 0)
        return 0;
    PyErr_Clear();   /* the table has none: torch.cuda.current_stream(i).cuda_stream */
    PyObject *mod = PyImport_ImportModule("torch.cuda");
    PyObject *s = mod ? PyObject_CallMethod(mod, "current_stream", "i", device_id) : NULL;
    PyObject *h = s ? PyObject_GetAttrString(s, "cuda_stream") : NULL;
    Py_XDECREF(mod);
    Py_XDECREF(s);
    if (!h) return -1;
    *stream = PyLong_AsVoidPtr(h);
    Py_DECREF(h);
    return PyErr_Occurred() ? -1 : 0;
}

PyObject *tj_dl_torch_dtype(tj_state *st, int dtype) { return st->torch_dtypes[dtype]; }
PyObject *tj_dl_torch_type(tj_state *st) { return (PyObject *)st->torch_tensor; }

int tj_dl_default_float(tj_state *st) {
    if (!st->torch_get_default_dtype &&
        !(st->torch_get_default_dtype = torch_attr("get_default_dtype")))
        return -1;
    PyObject *d = PyObject_CallNoArgs(st->torch_get_default_dtype);
    if (!d) return -1;
    Py_DECREF(d);
    return d == st->torch_dtypes[TJ_F64] ? TJ_F64 : TJ_F32;
}

PyObject *tj_dl_converter(PyTypeObject *tp) {
    /* the producer's own from_dlpack: its top-level module's, or its numpy namespace's
     * (jax.numpy for jaxlib arrays, cupy for cupy) */
    PyObject *modname = PyObject_GetAttrString((PyObject *)tp, "__module__");
    if (!modname) { PyErr_Clear(); return NULL; }
    const char *m = PyUnicode_AsUTF8(modname);
    char root[64];
    size_t k = 0;
    while (m && m[k] && m[k] != '.' && k < sizeof root - 1) { root[k] = m[k]; k++; }
    root[k] = 0;
    Py_DECREF(modname);
    PyErr_Clear();
    static const char *const tries[][2] = {{"jaxlib", "jax.numpy"}, {"jax", "jax.numpy"},
                                           {NULL, NULL}};
    const char *target = root;
    for (int i = 0; tries[i][0]; i++)
        if (strcmp(root, tries[i][0]) == 0) target = tries[i][1];
    PyObject *mod = PyImport_ImportModule(target);
    PyObject *f = mod ? PyObject_GetAttrString(mod, "from_dlpack") : NULL;
    Py_XDECREF(mod);
    if (!f) PyErr_Clear();
    return f;
}
