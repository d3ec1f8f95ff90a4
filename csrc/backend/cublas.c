/* cuBLAS for the CUDA backend's matrix products: libcublas opened with dlopen at the
 * first product (TRACEJIT_CUBLAS, the system's sonames, then the nvidia-cublas wheels'
 * and torch's bundled copies that tracejit._cuda.cublas_candidates() lists), one handle
 * per device, created in its primary context, its stream set to the launch's at every
 * call. A product runs through cublas{S,D}gemmStridedBatched when its layout maps to
 * cuBLAS's column-major operands (tj_cublas_map); otherwise, or without cuBLAS (not
 * installed, TRACEJIT_CUBLAS=0), the program's tiled kernel runs (emit_cuda.c): a clear
 * fallback, never an error. `_C._cublas()` tells which and why.
 * Requires: the GIL (every entry); the device's context current. */
#include "backend/cuda_api.h"
#include <dlfcn.h>
#include <stdio.h>

typedef struct tj_cublas_ctx *tj_cublas_handle;
typedef int (*gemm_s_fn)(tj_cublas_handle, int, int, int, int, int, const float *,
                         const float *, int, long long, const float *, int, long long,
                         const float *, float *, int, long long, int);
typedef int (*gemm_d_fn)(tj_cublas_handle, int, int, int, int, int, const double *,
                         const double *, int, long long, const double *, int, long long,
                         const double *, double *, int, long long, int);

#define MAX_DEVICES 64
static struct {
    int state;                   /* 0 not tried, 1 loaded, -1 unavailable (why) */
    void *lib;
    char path[1024], why[2048];
    int (*Create)(tj_cublas_handle *);
    int (*SetStream)(tj_cublas_handle, tj_custream);
    gemm_s_fn Sgemm;
    gemm_d_fn Dgemm;
    tj_cublas_handle handles[MAX_DEVICES];
} cb;

static int try_open(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
    cb.Create = (int (*)(tj_cublas_handle *))dlsym(h, "cublasCreate_v2");
    cb.SetStream = (int (*)(tj_cublas_handle, tj_custream))dlsym(h, "cublasSetStream_v2");
    cb.Sgemm = (gemm_s_fn)dlsym(h, "cublasSgemmStridedBatched");
    cb.Dgemm = (gemm_d_fn)dlsym(h, "cublasDgemmStridedBatched");
    if (!cb.Create || !cb.SetStream || !cb.Sgemm || !cb.Dgemm) {
        dlclose(h);
        return -1;
    }
    cb.lib = h;
    snprintf(cb.path, sizeof cb.path, "%s", path);
    return 0;
}

/* Loads cuBLAS once per process: 0, or -1 (cb.why says why; no exception). */
static int load(void) {
    if (cb.state) return cb.state > 0 ? 0 : -1;
    cb.state = -1;
    const char *env = getenv("TRACEJIT_CUBLAS");
    if (env && !strcmp(env, "0")) {
        snprintf(cb.why, sizeof cb.why, "TRACEJIT_CUBLAS=0");
        return -1;
    }
    if (env && *env && try_open(env) < 0) {
        snprintf(cb.why, sizeof cb.why, "TRACEJIT_CUBLAS=%s: not a loadable cuBLAS", env);
        return -1;
    }
    static const char *sys[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", NULL};
    for (int i = 0; !cb.lib && sys[i]; i++) try_open(sys[i]);
    PyObject *mod = cb.lib ? NULL : PyImport_ImportModule("tracejit._cuda");
    PyObject *c = mod ? PyObject_CallMethod(mod, "cublas_candidates", NULL) : NULL;
    Py_XDECREF(mod);
    for (Py_ssize_t i = 0; c && PyList_Check(c) && !cb.lib && i < PyList_GET_SIZE(c); i++) {
        const char *p = PyUnicode_AsUTF8(PyList_GET_ITEM(c, i));
        if (p) try_open(p);
    }
    Py_XDECREF(c);
    PyErr_Clear();
    if (!cb.lib) {
        snprintf(cb.why, sizeof cb.why, "no cuBLAS: tried libcublas.so.13, .12, libcublas.so "
                 "and tracejit._cuda.cublas_candidates() (pip install nvidia-cublas-cu12)");
        return -1;
    }
    cb.state = 1;
    return 0;
}

/* The device's handle (created once, in its context, which is current). NULL: none. */
static tj_cublas_handle handle_for(int ordinal) {
    if (load() < 0 || ordinal < 0 || ordinal >= MAX_DEVICES) return NULL;
    if (!cb.handles[ordinal] && cb.Create(&cb.handles[ordinal]) != 0) {
        cb.handles[ordinal] = NULL;
        snprintf(cb.why, sizeof cb.why, "cublasCreate failed on device %d", ordinal);
        cb.state = -1;   /* the kernels from now on */
    }
    return cb.handles[ordinal];
}

/* Operand X (r x c; element (i, j) at i * si + j * sj elements) as a cuBLAS operand:
 * column-major (op N, ld = sj) or row-major (op T, ld = si); a dim of length 1 takes
 * any stride. 0, or -1 when it is neither (the kernel runs). */
static int operand(int64_t r, int64_t c, int64_t si, int64_t sj, int *op, int64_t *ld) {
    int64_t rr = r > 1 ? r : 1, cc = c > 1 ? c : 1;
    if (si == 1 || r <= 1) {
        *ld = c <= 1 ? rr : sj;
        if (*ld >= rr && *ld <= INT32_MAX) { *op = 0; return 0; }
    }
    if (sj == 1 || c <= 1) {
        *ld = r <= 1 ? cc : si;
        if (*ld >= cc && *ld <= INT32_MAX) { *op = 1; return 0; }
    }
    return -1;
}

int tj_cublas_map(int64_t M, int64_t N, int64_t K, int64_t am, int64_t ak, int64_t bk,
                  int64_t bn, int64_t cm, int64_t cn, tj_gemm_map *g) {
    if (M <= 0 || N <= 0 || K <= 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) return -1;
    memset(g, 0, sizeof *g);
    int op;
    if (operand(M, N, cm, cn, &op, &g->ldc) == 0 && op == 0) {   /* C column-major */
        g->m = M; g->n = N; g->k = K;
        return operand(M, K, am, ak, &g->ta, &g->lda) | operand(K, N, bk, bn, &g->tb, &g->ldb);
    }
    if (operand(N, M, cn, cm, &op, &g->ldc) == 0 && op == 0) {   /* C row-major: C' = B'A' */
        g->swap = 1;
        g->m = N; g->n = M; g->k = K;
        return operand(N, K, bn, bk, &g->ta, &g->lda) | operand(K, M, ak, am, &g->tb, &g->ldb);
    }
    return -1;
}

/* Product p's operands at this call (the kernels' parameter block: bp, bs, nd): their
 * first elements, their element strides along their roles (st[operand][role]), and
 * cuBLAS's form. 0, or 1 when cuBLAS cannot take them. */
static int resolve(const tj_cuda_gemm *p, const uint64_t *bp, const int64_t *bs, int nd,
                   char *base[3], int64_t st[3][3], tj_gemm_map *g) {
    const int64_t size = p->dtype == TJ_F64 ? 8 : 4;
    const tj_gemm_operand *ops[3] = {&p->a, &p->b, &p->c};
    for (int o = 0; o < 3; o++) {
        const tj_gemm_operand *x = ops[o];
        int64_t off = 0;
        for (int k = 0; k < TJ_MAXDIM; k++)
            if (x->off[k]) off += x->flat ? (k ? 0 : x->off[0] * size)
                                          : k < nd ? x->off[k] * bs[x->slot * nd + k] : 0;
        base[o] = (char *)(uintptr_t)bp[x->slot] + off;
        for (int r = 0; r < 3; r++) {
            int64_t bytes = x->map[r] == -2 ? x->step[r] * size
                          : x->map[r] >= 0 && x->map[r] < nd ? x->step[r] * bs[x->slot * nd + x->map[r]]
                          : 0;
            if (x->map[r] >= nd || bytes % size) return 1;
            st[o][r] = bytes / size;
        }
    }
    if (tj_cublas_map(p->M, p->N, p->K, st[0][0], st[0][1], st[1][0], st[1][1], st[2][0],
                      st[2][1], g) < 0)
        return 1;
    if (p->batch > 1 && st[2][2] == 0) return 1;   /* batches written over each other */
    return 0;
}

int tj_cublas_gemm(int ordinal, void *stream, const tj_cuda_gemm *p, const uint64_t *bp,
                   const int64_t *bs, int nd) {
    int64_t st[3][3];
    char *base[3];
    tj_gemm_map g;
    if (resolve(p, bp, bs, nd, base, st, &g)) return 1;
    tj_cublas_handle h = handle_for(ordinal);
    if (!h) return 1;
    if (cb.SetStream(h, (tj_custream)stream) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "cuBLAS: cublasSetStream failed");
        return -1;
    }
    const int x = g.swap, y = !g.swap;   /* cuBLAS's first and second operands */
    int r;
    if (p->dtype == TJ_F64) {
        const double one = 1, zero = 0;
        r = cb.Dgemm(h, g.ta, g.tb, (int)g.m, (int)g.n, (int)g.k, &one, (const double *)base[x],
                     (int)g.lda, st[x][2], (const double *)base[y], (int)g.ldb, st[y][2], &zero,
                     (double *)base[2], (int)g.ldc, st[2][2], (int)p->batch);
    } else {
        const float one = 1, zero = 0;
        r = cb.Sgemm(h, g.ta, g.tb, (int)g.m, (int)g.n, (int)g.k, &one, (const float *)base[x],
                     (int)g.lda, st[x][2], (const float *)base[y], (int)g.ldb, st[y][2], &zero,
                     (float *)base[2], (int)g.ldc, st[2][2], (int)p->batch);
    }
    if (r != 0) {
        PyErr_Format(PyExc_RuntimeError, "cuBLAS: cublas%cgemmStridedBatched failed (status %d)",
                     p->dtype == TJ_F64 ? 'D' : 'S', r);
        return -1;
    }
    return 0;
}

/* _cublas() -> (path, None) when cuBLAS loads, (None, why) when the kernels run */
PyObject *tj_py_cublas(PyObject *m, PyObject *unused) {
    if (load() == 0) return Py_BuildValue("(sO)", cb.path, Py_None);
    return Py_BuildValue("(Os)", Py_None, cb.why);
}

/* _cublas_map(M, N, K, am, ak, bk, bn, cm, cn) -> (ta, tb, m, n, k, lda, ldb, ldc, swap)
 * or None: how a product with these element strides is handed to cuBLAS (the tests
 * check it against a column-major GEMM on the CPU) */
PyObject *tj_py_cublas_map(PyObject *m, PyObject *args) {
    long long v[9];
    if (!PyArg_ParseTuple(args, "LLLLLLLLL:_cublas_map", &v[0], &v[1], &v[2], &v[3], &v[4],
                          &v[5], &v[6], &v[7], &v[8]))
        return NULL;
    tj_gemm_map g;
    if (tj_cublas_map(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], &g) < 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(iiLLLLLLi)", g.ta, g.tb, (long long)g.m, (long long)g.n,
                         (long long)g.k, (long long)g.lda, (long long)g.ldb, (long long)g.ldc,
                         g.swap);
}

/* _cublas_resolve(gemm, params, n_slots, nd) -> ((a, b, c first elements), strides
 * [[a's rows, K, batch], [b's K, columns, batch], [c's rows, columns, batch]], the
 * _cublas_map tuple) or None: what the runtime hands cuBLAS for one of a program's
 * products (CompiledFunction._cuda_source's "gemms" entry) and a parameter block, for
 * the emulator (tests/cuda_emu.py) to run it as cuBLAS would */
PyObject *tj_py_cublas_resolve(PyObject *m, PyObject *args) {
    PyObject *d;
    Py_buffer par;
    int ns, nd;
    if (!PyArg_ParseTuple(args, "O!y*ii:_cublas_resolve", &PyTuple_Type, &d, &par, &ns, &nd))
        return NULL;
    tj_cuda_gemm p;
    memset(&p, 0, sizeof p);
    PyObject *x[3], *r = NULL;
    long long M, N, K, B;
    if (!PyArg_ParseTuple(d, "iLLLLOOO", &p.dtype, &M, &N, &K, &B, &x[0], &x[1], &x[2])) goto done;
    p.M = M; p.N = N; p.K = K; p.batch = B;
    tj_gemm_operand *ops[3] = {&p.a, &p.b, &p.c};
    for (int o = 0; o < 3; o++) {
        PyObject *off, *map, *step;
        if (!PyArg_ParseTuple(x[o], "iiO!O!O!", &ops[o]->slot, &ops[o]->flat, &PyTuple_Type, &off,
                              &PyTuple_Type, &map, &PyTuple_Type, &step) ||
            PyTuple_GET_SIZE(off) != TJ_MAXDIM || PyTuple_GET_SIZE(map) != 3 ||
            PyTuple_GET_SIZE(step) != 3 || ops[o]->slot < 0 || ops[o]->slot >= ns) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_cublas_resolve: a bad operand");
            goto done;
        }
        for (int k = 0; k < TJ_MAXDIM; k++) ops[o]->off[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(off, k));
        for (int k = 0; k < 3; k++) {
            ops[o]->map[k] = (int8_t)PyLong_AsLong(PyTuple_GET_ITEM(map, k));
            ops[o]->step[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(step, k));
        }
    }
    if (PyErr_Occurred()) goto done;
    if (par.len < 8 * (Py_ssize_t)ns * (1 + nd)) {
        PyErr_SetString(PyExc_ValueError, "_cublas_resolve: a short parameter block");
        goto done;
    }
    char *base[3];
    int64_t st[3][3];
    tj_gemm_map g;
    const uint64_t *bp = par.buf;
    if (resolve(&p, bp, (const int64_t *)(bp + ns), nd, base, st, &g)) {
        r = Py_NewRef(Py_None);
        goto done;
    }
    r = Py_BuildValue("((KKK)((LLL)(LLL)(LLL))(iiLLLLLLi))", (unsigned long long)(uintptr_t)base[0],
                      (unsigned long long)(uintptr_t)base[1], (unsigned long long)(uintptr_t)base[2],
                      (long long)st[0][0], (long long)st[0][1], (long long)st[0][2],
                      (long long)st[1][0], (long long)st[1][1], (long long)st[1][2],
                      (long long)st[2][0], (long long)st[2][1], (long long)st[2][2], g.ta, g.tb,
                      (long long)g.m, (long long)g.n, (long long)g.k, (long long)g.lda,
                      (long long)g.ldb, (long long)g.ldc, g.swap);
done:
    PyBuffer_Release(&par);
    return r;
}
