/* Large result arrays from recycled memory. A fresh large allocation costs a page
 * fault per page on its first touch (the kernel zeroes each page: about one more
 * write of the whole array), on every call. So a result of at least TJ_BLOCK_MIN
 * bytes is an ndarray over a block of ours, whose owner (the array's base) hands the
 * block back to a small cache when the array dies; the next call's result reuses it,
 * already mapped. A loop that rebinds `y = f(x)` then touches no fresh memory.
 * Contract: blocks are 64-byte aligned; the cache holds at most TJ_BLOCK_SLOTS
 * blocks and TRACEJIT_BLOCK_CACHE_MB (default 256) MiB, the rest is freed at once;
 * TRACEJIT_BLOCK_CACHE_MB=0 turns recycling off. NumPy results and torch results
 * (csrc/dlpack.c, whose deleter torch calls on any thread, with or without the GIL)
 * share the cache, so a mutex guards it (held for a scan of at most 8 slots). */
#define _GNU_SOURCE
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#define TJ_BLOCK_SLOTS 8

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static struct {
    void *p[TJ_BLOCK_SLOTS];
    size_t cap[TJ_BLOCK_SLOTS];
    int n;
    size_t bytes, limit;
    int limit_read;
} cache;

static size_t cache_limit(void) {
    if (!cache.limit_read) {
        long long mb = tj_env_int("TRACEJIT_BLOCK_CACHE_MB", 256);
        cache.limit = mb > 0 ? (size_t)mb << 20 : 0;
        cache.limit_read = 1;
    }
    return cache.limit;
}

int tj_block_recycling(void) {
    pthread_mutex_lock(&cache_mu);
    int on = cache_limit() > 0;
    pthread_mutex_unlock(&cache_mu);
    return on;
}

/* A block of at least `bytes` (its capacity in *cap): a cached one that is not more
 * than twice too large, else a new one. NULL when out of memory. Any thread. */
void *tj_block_get(size_t bytes, size_t *cap) {
    pthread_mutex_lock(&cache_mu);
    int best = -1;
    for (int k = 0; k < cache.n; k++)
        if (cache.cap[k] >= bytes && cache.cap[k] / 2 <= bytes &&
            (best < 0 || cache.cap[k] < cache.cap[best]))
            best = k;
    if (best >= 0) {
        void *p = cache.p[best];
        *cap = cache.cap[best];
        cache.bytes -= *cap;
        cache.p[best] = cache.p[--cache.n];
        cache.cap[best] = cache.cap[cache.n];
        pthread_mutex_unlock(&cache_mu);
        return p;
    }
    pthread_mutex_unlock(&cache_mu);
    size_t c = (bytes + 4095) & ~(size_t)4095;
    void *p = NULL;
    if (posix_memalign(&p, c >= (4 << 20) ? 2 << 20 : 4096, c) != 0) return NULL;
    madvise(p, c, MADV_HUGEPAGE);   /* as NumPy does for large arrays: fewer faults */
    *cap = c;
    return p;
}

/* Back to the cache (or freed when it does not fit). Any thread. */
void tj_block_put(void *p, size_t cap) {
    pthread_mutex_lock(&cache_mu);
    size_t limit = cache_limit();
    if (cap > limit) {
        pthread_mutex_unlock(&cache_mu);
        free(p);
        return;
    }
    /* make room: drop the largest blocks until this one fits */
    while (cache.n && (cache.n == TJ_BLOCK_SLOTS || cache.bytes + cap > limit)) {
        int big = 0;
        for (int k = 1; k < cache.n; k++)
            if (cache.cap[k] > cache.cap[big]) big = k;
        free(cache.p[big]);
        cache.bytes -= cache.cap[big];
        cache.p[big] = cache.p[--cache.n];
        cache.cap[big] = cache.cap[cache.n];
    }
    cache.p[cache.n] = p;
    cache.cap[cache.n++] = cap;
    cache.bytes += cap;
    pthread_mutex_unlock(&cache_mu);
}

typedef struct { void *p; size_t cap; } owned;

static void owner_release(PyObject *capsule) {
    owned *o = PyCapsule_GetPointer(capsule, "tracejit.block");
    if (!o) { PyErr_Clear(); return; }
    tj_block_put(o->p, o->cap);
    PyMem_Free(o);
}

PyObject *tj_new_result(int ndim, const int64_t *shape, int typenum, int itemsize) {
    size_t bytes = (size_t)itemsize;
    for (int k = 0; k < ndim; k++) bytes *= (size_t)shape[k];
    if (bytes < TJ_BLOCK_MIN || !tj_block_recycling())
        return PyArray_EMPTY(ndim, (npy_intp *)shape, typenum, 0);
    owned *o = PyMem_Malloc(sizeof *o);
    if (!o || !(o->p = tj_block_get(bytes, &o->cap))) {   /* NumPy's allocation says why */
        PyMem_Free(o);
        return PyArray_EMPTY(ndim, (npy_intp *)shape, typenum, 0);
    }
    PyObject *owner = PyCapsule_New(o, "tracejit.block", owner_release);
    if (!owner) {
        tj_block_put(o->p, o->cap);
        PyMem_Free(o);
        return NULL;
    }
    PyObject *a = PyArray_New(&PyArray_Type, ndim, (npy_intp *)shape, typenum, NULL, o->p, 0,
                              NPY_ARRAY_CARRAY, NULL);
    if (!a) { Py_DECREF(owner); return NULL; }
    if (PyArray_SetBaseObject((PyArrayObject *)a, owner) < 0) {   /* steals owner */
        Py_DECREF(a);
        return NULL;
    }
    return a;
}
