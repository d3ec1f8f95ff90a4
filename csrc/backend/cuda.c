/* The CUDA backend: a plan's CUDA program (csrc/emit/emit_cuda.c) compiled by NVRTC for
 * the device, loaded into its primary context, and a kernel that runs itself
 * (tj_kernel.run): each replay fills one parameter block from the bound slots and
 * launches the program's kernels on torch's current stream of the device, with no
 * synchronization and no allocation (scratch and the reductions' workspace are one
 * device block the kernel owns, allocated once). A program with gathers zeroes its
 * error record before the launches and reads it back after them into the replay's
 * (P[n_slots]), waiting for the stream: an index out of bounds is the CPU's IndexError.
 * A matrix product runs through cuBLAS on the same stream when it loads and the call's
 * strides map (csrc/backend/cublas.c), else through the program's tiled kernel.
 * Requires: the GIL (every entry). Guarantees: every driver call is checked (a failure
 * is a RuntimeError naming it); a plan's scratch is never used by two streams at once
 * (a call on another stream than the last waits for the last one first); an image read
 * from the disk cache is used only when the source stored with it is the source asked
 * for (TRACEJIT_CACHE_DIR, as the optimizing tier's; files tj-cuda-*.bin). */
#include "backend/backend.h"
#include "backend/cuda_api.h"
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* SLOT_HOST: a NumPy array the trace captured (torch's vocabulary makes its constants,
 * arange, eye, tril's mask, with NumPy): read at every call, as on the CPU, into a
 * device copy that is replaced (stream-ordered, from torch's allocator) only when the
 * array's contents differ from the copy's */
enum { SLOT_MEM, SLOT_VALUE, SLOT_CONST, SLOT_SCRATCH, SLOT_HOST };

typedef struct {
    tj_state *st;                    /* borrowed (the plan's): torch's allocator and stream */
    const tj_cuda_device *dev;
    tj_cumod mod;
    tj_cufn *fns;                    /* per launch */
    tj_cuda_launch *launches;
    tj_cuda_gemm *gemms;             /* products cuBLAS may run (tj_cuda_launch.gemm) */
    int n_launches, n_slots, nd;
    uint8_t *slot_kind;              /* SLOT_* per slot */
    int64_t *scratch_off;            /* per slot: a scratch slot's byte offset */
    int64_t (*strides)[TJ_MAXDIM];   /* per slot: a scratch slot's contiguous strides */
    tj_cuptr mem;                    /* scratch, then the workspace */
    int64_t work_off;
    int64_t err_off;                 /* the gathers' error record in the workspace, or -1 */
    int64_t *host_bytes;             /* per SLOT_HOST slot: its bytes, */
    char **snap;                     /* what its device copy holds, */
    PyObject **copy;                 /* the copy (a torch tensor), */
    void **copy_ptr;                 /* and its data */
    unsigned char *params;           /* the block every launch receives (tj_args) */
    int64_t param_bytes;
    void *last_stream;
    int used;
} cuda_state;

/* ---- NVRTC's images, in memory, by source and architecture ---------------------- */

/* process-wide, as the tier's disk cache: the images' bytes, no Python object (a second
 * instance of _C shares them; the GIL guards the table) */
#define CACHE_MAX 512
static struct { uint64_t hash; int cc; char *src; char *image; size_t size; } cache[CACHE_MAX];
static int n_cache;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The disk cache's file for (source hash, architecture, driver): 0, or -1 (no cache). */
static int disk_path(char *path, size_t cap, uint64_t h, int cc) {
    const char *e = getenv("TRACEJIT_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    char dir[3000];
    if (e && *e) snprintf(dir, sizeof dir, "%s", e);
    else if (x && *x) snprintf(dir, sizeof dir, "%s/tracejit", x);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/tracejit", home);
    else return -1;
    for (char *p = dir + 1; *p; p++) {   /* mkdir -p */
        if (*p != '/') continue;
        *p = 0;
        int bad = mkdir(dir, 0700) && errno != EEXIST;
        *p = '/';
        if (bad) return -1;
    }
    if (mkdir(dir, 0700) && errno != EEXIST) return -1;
    int version = 0;
    const tj_cuda_driver *d = tj_cuda_driver_get();
    if (!d || d->DriverGetVersion(&version) != 0) { PyErr_Clear(); return -1; }
    int n = snprintf(path, cap, "%s/tj-cuda-%016llx-sm%d-d%d.bin", dir, (unsigned long long)h,
                     cc, version);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* A cached image: the file holds the source's length, the source, the image. New
 * reference, or NULL (no exception) when absent, unreadable or of another source. */
static PyObject *disk_read(const char *path, const char *src) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    PyObject *img = NULL;
    uint64_t n = 0, len = strlen(src);
    struct stat st;
    char *text = NULL;
    if (fstat(fileno(f), &st) == 0 && fread(&n, 8, 1, f) == 1 && n == len &&
        (uint64_t)st.st_size > 8 + n && (text = PyMem_Malloc(n + 1)) &&
        fread(text, 1, n, f) == n && !memcmp(text, src, n) &&
        (img = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(st.st_size - 8 - (off_t)n))) &&
        fread(PyBytes_AS_STRING(img), 1, (size_t)PyBytes_GET_SIZE(img), f) !=
            (size_t)PyBytes_GET_SIZE(img))
        Py_CLEAR(img);
    PyMem_Free(text);
    fclose(f);
    PyErr_Clear();
    return img;
}

/* Writes the file under another name, then renames it: readers never see half a file. */
static void disk_write(const char *path, const char *src, PyObject *img) {
    char tmp[3300];
    if (snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof tmp) return;
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    uint64_t n = strlen(src);
    int ok = fwrite(&n, 8, 1, f) == 1 && fwrite(src, 1, n, f) == n &&
             fwrite(PyBytes_AS_STRING(img), 1, (size_t)PyBytes_GET_SIZE(img), f) ==
                 (size_t)PyBytes_GET_SIZE(img);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

/* The cubin (or PTX) of src for cc: from memory, from the disk cache, or NVRTC's. New
 * reference; NULL + exception. */
static PyObject *image_for(const char *src, int cc, PyObject *compile_error) {
    uint64_t h = fnv1a(src);
    for (int i = 0; i < n_cache; i++)
        if (cache[i].hash == h && cache[i].cc == cc && !strcmp(cache[i].src, src))
            return PyBytes_FromStringAndSize(cache[i].image, (Py_ssize_t)cache[i].size);
    char path[3200];
    int on_disk = disk_path(path, sizeof path, h, cc) == 0;
    PyObject *img = on_disk ? disk_read(path, src) : NULL;
    if (!img) {
        int is_ptx;
        PyObject *log = NULL;
        tj_backend_count_compile();
        img = tj_nvrtc_compile(src, cc, tj_cuda_include(), compile_error, &is_ptx, &log);
        Py_XDECREF(log);
        if (img && on_disk) disk_write(path, src, img);
    }
    size_t size = img ? (size_t)PyBytes_GET_SIZE(img) : 0;
    char *copy = img && n_cache < CACHE_MAX ? malloc(size + 1) : NULL;
    if (copy && (cache[n_cache].src = strdup(src))) {
        memcpy(copy, PyBytes_AS_STRING(img), size);
        cache[n_cache].hash = h;
        cache[n_cache].cc = cc;
        cache[n_cache].image = copy;
        cache[n_cache++].size = size;
    } else {
        free(copy);
    }
    return img;
}

/* ---- the kernel ------------------------------------------------------------------ */

static void state_free(cuda_state *c) {
    if (!c) return;
    const tj_cuda_driver *d = c->dev ? tj_cuda_driver_get() : NULL;
    if (d && (c->mod || c->mem) && tj_cuda_device_enter(c->dev) == 0) {
        if (c->used) d->StreamSynchronize((tj_custream)c->last_stream);  /* nothing in flight */
        if (c->mod) d->ModuleUnload(c->mod);
        if (c->mem) d->MemFree(c->mem);
    }
    PyErr_Clear();   /* a free reports nothing */
    for (int i = 0; c->copy && i < c->n_slots; i++) Py_XDECREF(c->copy[i]);
    for (int i = 0; c->snap && i < c->n_slots; i++) PyMem_Free(c->snap[i]);
    PyMem_Free(c->host_bytes);
    PyMem_Free(c->snap);
    PyMem_Free(c->copy);
    PyMem_Free(c->copy_ptr);
    PyMem_Free(c->fns);
    PyMem_Free(c->launches);
    PyMem_Free(c->gemms);
    PyMem_Free(c->slot_kind);
    PyMem_Free(c->scratch_off);
    PyMem_Free(c->strides);
    PyMem_Free(c->params);
    PyMem_Free(c);
}

static void cuda_free(tj_kernel *k) {
    state_free(k->state);
    memset(k, 0, sizeof *k);
}

const tj_backend tj_backend_cuda = {.name = "cuda", .free = cuda_free};

/* Slot i's device copy of host array `host` up to date on `stream`. 0; -1 + exception. */
static int host_copy(cuda_state *c, int i, const void *host, void *stream) {
    int64_t n = c->host_bytes[i];
    if (c->copy[i] && !memcmp(c->snap[i], host, (size_t)n)) return 0;
    void *data;
    PyObject *t = tj_dl_torch_empty_cuda(c->st, c->dev->ordinal, 1, &n, TJ_BOOL, &data);
    if (!t) return -1;
    if (tj_cuda_check(tj_cuda_driver_get()->MemcpyHtoDAsync((tj_cuptr)(uintptr_t)data, host,
                                                            (size_t)n, (tj_custream)stream),
                      "cuMemcpyHtoDAsync (a captured NumPy array)") < 0) {
        Py_DECREF(t);
        return -1;
    }
    Py_XSETREF(c->copy[i], t);
    c->copy_ptr[i] = data;
    memcpy(c->snap[i], host, (size_t)n);
    return 0;
}

/* One replay: the parameter block from the bound slots, then the launches on torch's
 * current stream. 0; -1 + exception. */
static int cuda_run(tj_kernel *k, void **P, const int64_t **S) {
    cuda_state *c = k->state;
    const tj_cuda_driver *d = tj_cuda_driver_get();
    void *stream;
    if (!d || tj_cuda_device_enter(c->dev) < 0 ||
        tj_dl_torch_stream(c->st, c->dev->ordinal, &stream) < 0)
        return -1;
    if (c->used && c->last_stream != stream &&   /* the scratch: one stream at a time */
        tj_cuda_check(d->StreamSynchronize((tj_custream)c->last_stream),
                      "cuStreamSynchronize (the previous call's stream)") < 0)
        return -1;
    c->last_stream = stream;
    c->used = 1;
    const int ns = c->n_slots, nd = c->nd;
    uint64_t *bp = (uint64_t *)c->params;
    int64_t *bs = (int64_t *)(c->params + 8 * (size_t)ns);
    for (int i = 0; i < ns; i++) {
        const int64_t *st = S[i];
        switch (c->slot_kind[i]) {
        case SLOT_CONST: bp[i] = 0; st = NULL; break;   /* spelled in the source */
        case SLOT_VALUE: memcpy(&bp[i], P[i], 8); st = NULL; break;
        case SLOT_SCRATCH: bp[i] = c->mem + (uint64_t)c->scratch_off[i]; st = c->strides[i]; break;
        case SLOT_HOST:
            if (c->host_bytes[i] && host_copy(c, i, P[i], stream) < 0) return -1;
            bp[i] = (uint64_t)(uintptr_t)c->copy_ptr[i];
            break;
        default: bp[i] = (uint64_t)(uintptr_t)P[i];
        }
        if (st) memcpy(bs + (size_t)i * nd, st, (size_t)nd * sizeof(int64_t));
        else memset(bs + (size_t)i * nd, 0, (size_t)nd * sizeof(int64_t));
    }
    bp[ns * (1 + nd)] = c->mem + (uint64_t)c->work_off;   /* W */
    void *params[] = {c->params};
    static const int64_t zeros[4];
    const tj_cuptr err = c->mem + (uint64_t)(c->work_off + c->err_off);
    if (c->err_off >= 0 &&
        tj_cuda_check(d->MemcpyHtoDAsync(err, zeros, sizeof zeros, (tj_custream)stream),
                      "cuMemcpyHtoDAsync (the error record)") < 0)
        return -1;
    for (int i = 0; i < c->n_launches; i++) {
        const tj_cuda_launch *L = &c->launches[i];
        if (L->grid <= 0) continue;
        if (L->gemm) {   /* cuBLAS when it loads and the strides map; else the kernel */
            int r = tj_cublas_gemm(c->dev->ordinal, stream, &c->gemms[L->gemm - 1], bp, bs, nd);
            if (r < 0) return -1;
            if (r == 0) continue;
        }
        if (tj_cuda_check(d->LaunchKernel(c->fns[i], (unsigned)L->grid, 1, 1, (unsigned)L->block,
                                          1, 1, 0, (tj_custream)stream, params, NULL),
                          "cuLaunchKernel") < 0)
            return -1;
    }
    if (c->err_off >= 0 &&   /* an index out of bounds: read where the runtime looks */
        (tj_cuda_check(d->MemcpyDtoHAsync(P[ns], err, 4 * sizeof(int64_t), (tj_custream)stream),
                       "cuMemcpyDtoHAsync (the error record)") < 0 ||
         tj_cuda_check(d->StreamSynchronize((tj_custream)stream),
                       "cuStreamSynchronize (the error record)") < 0))
        return -1;
    return 0;
}

/* Per slot: how the parameter block passes it. 0; -1 no memory. */
static int slot_table(cuda_state *c, const tj_graph *g, const tj_schedule *s,
                      const tj_cuda_program *prog) {
    int ns = c->n_slots;
    c->slot_kind = PyMem_Calloc((size_t)ns, 1);
    c->scratch_off = PyMem_Calloc((size_t)ns, sizeof *c->scratch_off);
    c->strides = PyMem_Calloc((size_t)ns, sizeof *c->strides);
    c->params = PyMem_Calloc((size_t)prog->param_bytes, 1);
    c->host_bytes = PyMem_Calloc((size_t)ns, sizeof *c->host_bytes);
    c->snap = PyMem_Calloc((size_t)ns, sizeof *c->snap);
    c->copy = PyMem_Calloc((size_t)ns, sizeof *c->copy);
    c->copy_ptr = PyMem_Calloc((size_t)ns, sizeof *c->copy_ptr);
    if (!c->slot_kind || !c->scratch_off || !c->strides || !c->params || !c->host_bytes ||
        !c->snap || !c->copy || !c->copy_ptr)
        return -1;
    for (int32_t id = 0; id < g->n; id++) {   /* captured NumPy arrays: their bytes */
        const tj_node *n = &g->nodes[id];
        if (n->op != TJ_OP_CAPTURE || g->slots[n->slot].torch || prog->by_value[n->slot]) continue;
        int64_t bytes = tj_dtype_size(n->dtype);
        for (int d = 0; d < n->ndim; d++) bytes *= n->shape[d];
        c->slot_kind[n->slot] = SLOT_HOST;
        c->host_bytes[n->slot] = bytes;
        if (!(c->snap[n->slot] = PyMem_Malloc((size_t)bytes + 1))) return -1;
    }
    for (int i = 0; i < ns; i++) {
        if (c->slot_kind[i] == SLOT_HOST) continue;
        if (prog->by_value[i]) c->slot_kind[i] = SLOT_VALUE;
        else if (i < g->n_slots && g->slots[i].kind == TJ_SLOT_CONST) c->slot_kind[i] = SLOT_CONST;
        else if (i >= s->first_scratch && i < s->first_out) {
            c->slot_kind[i] = SLOT_SCRATCH;
            c->scratch_off[i] = s->scratch_off[i - s->first_scratch];
            int64_t stride = tj_dtype_size(s->slot_dtype[i]);
            for (int d = s->slot_ndim[i] - 1; d >= 0; d--) {
                c->strides[i][d] = stride;
                stride *= s->slot_shape[i][d];
            }
        }
    }
    return 0;
}

int tj_cuda_kernel_build(tj_state *st, const tj_graph *g, const tj_schedule *s,
                         const tj_cuda_program *prog, int ordinal, tj_kernel *k) {
    const tj_cuda_device *dev = tj_cuda_device_get(ordinal);
    if (!dev || tj_cuda_device_enter(dev) < 0) return -1;
    const tj_cuda_driver *d = tj_cuda_driver_get();
    PyObject *img = image_for(prog->src.buf, dev->cc_major * 10 + dev->cc_minor, st->CompileError);
    if (!img) return -1;
    cuda_state *c = PyMem_Calloc(1, sizeof *c);
    if (!c) { Py_DECREF(img); PyErr_NoMemory(); return -1; }
    c->st = st;
    c->dev = dev;
    c->n_slots = prog->n_slots;
    c->nd = prog->nd;
    c->n_launches = prog->n_launches;
    c->param_bytes = prog->param_bytes;
    c->err_off = prog->err_off;
    c->fns = PyMem_Calloc((size_t)prog->n_launches + 1, sizeof *c->fns);
    c->launches = PyMem_Calloc((size_t)prog->n_launches + 1, sizeof *c->launches);
    c->gemms = PyMem_Calloc((size_t)prog->n_gemms + 1, sizeof *c->gemms);
    if (!c->fns || !c->launches || !c->gemms || slot_table(c, g, s, prog) < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(c->launches, prog->launches, (size_t)prog->n_launches * sizeof *c->launches);
    memcpy(c->gemms, prog->gemms, (size_t)prog->n_gemms * sizeof *c->gemms);
    if (tj_cuda_check(d->ModuleLoadData(&c->mod, PyBytes_AS_STRING(img)), "cuModuleLoadData") < 0)
        goto fail;
    for (int i = 0; i < c->n_launches; i++) {
        char name[40];
        snprintf(name, sizeof name, c->launches[i].fin ? "tj_g%d_fin" : "tj_g%d",
                 c->launches[i].group);
        if (tj_cuda_check(d->ModuleGetFunction(&c->fns[i], c->mod, name), "cuModuleGetFunction") < 0)
            goto fail;
    }
    c->work_off = (s->scratch_bytes + 255) / 256 * 256;
    size_t bytes = (size_t)(c->work_off + prog->work_bytes);
    if (bytes && tj_cuda_check(d->MemAlloc(&c->mem, bytes), "cuMemAlloc (the plan's scratch)") < 0)
        goto fail;
    Py_DECREF(img);
    k->backend = &tj_backend_cuda;
    k->state = c;
    k->run = cuda_run;
    k->groups = NULL;
    return 0;
fail:
    Py_DECREF(img);
    state_free(c);
    return -1;
}
