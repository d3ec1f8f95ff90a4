/* The CUDA driver and NVRTC through dlopen (cuda_api.h). Requires: the GIL for every
 * call (loading happens once, under it). Guarantees: a library that is missing or an
 * entry point that does not resolve is a RuntimeError saying which, never a crash;
 * libcuda.so.1 is opened by that name only (the toolkit's stub libcuda.so fails with
 * CUDA_ERROR_STUB_LIBRARY); each device's primary context is retained once and kept. */
#include "backend/cuda_api.h"
#include <dirent.h>
#include <dlfcn.h>

#define CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76

/* ---- the driver ----------------------------------------------------------------- */

static tj_cuda_driver drv;
static int drv_state;            /* 0 not tried, 1 loaded, -1 failed (drv_error says why) */
static char drv_error[512];

static int resolve(void *h, void **slot, const char *name) {
    *slot = dlsym(h, name);
    if (*slot) return 0;
    snprintf(drv_error, sizeof drv_error, "libcuda.so.1 has no entry point %s (driver too old)",
             name);
    return -1;
}

static int driver_open(void) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(drv_error, sizeof drv_error,
                 "no CUDA driver: libcuda.so.1 did not load (%s)", e ? e : "not found");
        return -1;
    }
#define R(field, name) if (resolve(h, (void **)&drv.field, name) < 0) return -1
    R(Init, "cuInit");
    R(DriverGetVersion, "cuDriverGetVersion");
    R(DeviceGetCount, "cuDeviceGetCount");
    R(DeviceGet, "cuDeviceGet");
    R(DeviceGetAttribute, "cuDeviceGetAttribute");
    R(DeviceGetName, "cuDeviceGetName");
    R(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    R(CtxGetCurrent, "cuCtxGetCurrent");
    R(CtxSetCurrent, "cuCtxSetCurrent");
    R(ModuleLoadData, "cuModuleLoadData");
    R(ModuleUnload, "cuModuleUnload");
    R(ModuleGetFunction, "cuModuleGetFunction");
    R(LaunchKernel, "cuLaunchKernel");
    R(MemAlloc, "cuMemAlloc_v2");
    R(MemFree, "cuMemFree_v2");
    R(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    R(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    R(PointerGetAttribute, "cuPointerGetAttribute");
    R(StreamSynchronize, "cuStreamSynchronize");
    R(GetErrorName, "cuGetErrorName");
    R(GetErrorString, "cuGetErrorString");
#undef R
    tj_curesult r = drv.Init(0);
    if (r != 0) {
        const char *name = NULL, *text = NULL;
        drv.GetErrorName(r, &name);
        drv.GetErrorString(r, &text);
        snprintf(drv_error, sizeof drv_error, "CUDA driver: cuInit failed: %s: %s",
                 name ? name : "unknown error", text ? text : "");
        return -1;
    }
    return 0;
}

const tj_cuda_driver *tj_cuda_driver_get(void) {
    if (!drv_state) drv_state = driver_open() == 0 ? 1 : -1;
    if (drv_state > 0) return &drv;
    PyErr_SetString(PyExc_RuntimeError, drv_error);
    return NULL;
}

int tj_cuda_check(tj_curesult r, const char *what) {
    if (r == 0) return 0;
    const char *name = NULL, *text = NULL;
    if (drv.GetErrorName) drv.GetErrorName(r, &name);
    if (drv.GetErrorString) drv.GetErrorString(r, &text);
    PyErr_Format(PyExc_RuntimeError, "CUDA driver: %s failed: %s (%d): %s", what,
                 name ? name : "unknown error", r, text ? text : "");
    return -1;
}

#define TJ_CUDA_MAX_DEVICES 64
static tj_cuda_device *devices[TJ_CUDA_MAX_DEVICES];

const tj_cuda_device *tj_cuda_device_get(int ordinal) {
    const tj_cuda_driver *d = tj_cuda_driver_get();
    if (!d) return NULL;
    if (ordinal < 0 || ordinal >= TJ_CUDA_MAX_DEVICES) {
        PyErr_Format(PyExc_RuntimeError, "CUDA device %d: ordinal out of range", ordinal);
        return NULL;
    }
    if (devices[ordinal]) return devices[ordinal];
    int count = 0;
    if (tj_cuda_check(d->DeviceGetCount(&count), "cuDeviceGetCount") < 0) return NULL;
    if (ordinal >= count) {
        PyErr_Format(PyExc_RuntimeError, "CUDA device %d: the driver sees %d device(s)",
                     ordinal, count);
        return NULL;
    }
    tj_cuda_device *dev = PyMem_Calloc(1, sizeof *dev);
    if (!dev) return (const tj_cuda_device *)PyErr_NoMemory();
    tj_cudevice h;
    dev->ordinal = ordinal;
    if (tj_cuda_check(d->DeviceGet(&h, ordinal), "cuDeviceGet") < 0 ||
        tj_cuda_check(d->DeviceGetAttribute(&dev->cc_major,
                                            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, h),
                      "cuDeviceGetAttribute(compute capability major)") < 0 ||
        tj_cuda_check(d->DeviceGetAttribute(&dev->cc_minor,
                                            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, h),
                      "cuDeviceGetAttribute(compute capability minor)") < 0 ||
        tj_cuda_check(d->DeviceGetAttribute(&dev->sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                            h),
                      "cuDeviceGetAttribute(multiprocessor count)") < 0 ||
        tj_cuda_check(d->DeviceGetName(dev->name, (int)sizeof dev->name - 1, h),
                      "cuDeviceGetName") < 0 ||
        tj_cuda_check(d->DevicePrimaryCtxRetain(&dev->ctx, h), "cuDevicePrimaryCtxRetain") < 0) {
        PyMem_Free(dev);
        return NULL;
    }
    devices[ordinal] = dev;   /* retained for the process, as torch keeps it */
    return dev;
}

int tj_cuda_device_enter(const tj_cuda_device *dev) {
    tj_cuctx cur = NULL;
    if (tj_cuda_check(drv.CtxGetCurrent(&cur), "cuCtxGetCurrent") < 0) return -1;
    if (cur == dev->ctx) return 0;
    return tj_cuda_check(drv.CtxSetCurrent(dev->ctx), "cuCtxSetCurrent");
}

/* ---- NVRTC ---------------------------------------------------------------------- */

typedef struct tj_nvrtc_prog *nvrtc_prog;
static struct {
    void *handle;
    char path[1024];
    int major, minor;
    int (*Version)(int *, int *);
    const char *(*GetErrorString)(int);
    int (*CreateProgram)(nvrtc_prog *, const char *, const char *, int, const char *const *,
                         const char *const *);
    int (*CompileProgram)(nvrtc_prog, int, const char *const *);
    int (*GetProgramLogSize)(nvrtc_prog, size_t *);
    int (*GetProgramLog)(nvrtc_prog, char *);
    int (*GetCUBINSize)(nvrtc_prog, size_t *);
    int (*GetCUBIN)(nvrtc_prog, char *);
    int (*GetPTXSize)(nvrtc_prog, size_t *);
    int (*GetPTX)(nvrtc_prog, char *);
    int (*DestroyProgram)(nvrtc_prog *);
    int (*GetNumSupportedArchs)(int *);
    int (*GetSupportedArchs)(int *);
    int archs[64], n_archs;
} nv;

/* Loads libnvrtc-builtins*.so.* of dir (not the .alt variants) first, so that NVRTC,
 * which opens it by name, finds it loaded although dir is not on the loader's path. */
static void preload_builtins(const char *dir) {
    DIR *dd = opendir(dir);
    if (!dd) return;
    struct dirent *e;
    char p[1400];
    while ((e = readdir(dd)))
        if (!strncmp(e->d_name, "libnvrtc-builtins.so.", 21) &&
            strlen(dir) + strlen(e->d_name) + 2 <= sizeof p) {
            snprintf(p, sizeof p, "%s/%.255s", dir, e->d_name);
            dlopen(p, RTLD_NOW | RTLD_GLOBAL);
        }
    closedir(dd);
}

static int nvrtc_try(const char *path) {
    const char *slash = strrchr(path, '/');
    if (slash) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        preload_builtins(dir);
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
#define R(field, name) if (!(*(void **)&nv.field = dlsym(h, name))) { dlclose(h); return -1; }
    R(Version, "nvrtcVersion");
    R(GetErrorString, "nvrtcGetErrorString");
    R(CreateProgram, "nvrtcCreateProgram");
    R(CompileProgram, "nvrtcCompileProgram");
    R(GetProgramLogSize, "nvrtcGetProgramLogSize");
    R(GetProgramLog, "nvrtcGetProgramLog");
    R(GetCUBINSize, "nvrtcGetCUBINSize");
    R(GetCUBIN, "nvrtcGetCUBIN");
    R(GetPTXSize, "nvrtcGetPTXSize");
    R(GetPTX, "nvrtcGetPTX");
    R(DestroyProgram, "nvrtcDestroyProgram");
    R(GetNumSupportedArchs, "nvrtcGetNumSupportedArchs");
    R(GetSupportedArchs, "nvrtcGetSupportedArchs");
#undef R
    int n = 0;
    if (nv.Version(&nv.major, &nv.minor) != 0 || nv.GetNumSupportedArchs(&n) != 0 || n <= 0 ||
        n > (int)(sizeof nv.archs / sizeof nv.archs[0]) || nv.GetSupportedArchs(nv.archs) != 0) {
        dlclose(h);
        return -1;
    }
    nv.n_archs = n;
    nv.handle = h;
    snprintf(nv.path, sizeof nv.path, "%s", path);
    return 0;
}

/* tracejit._cuda.nvrtc_candidates(): paths of bundled copies. New ref or NULL. */
static PyObject *bundled_candidates(void) {
    PyObject *mod = PyImport_ImportModule("tracejit._cuda");
    PyObject *r = mod ? PyObject_CallMethod(mod, "nvrtc_candidates", NULL) : NULL;
    Py_XDECREF(mod);
    if (r && !PyList_Check(r)) Py_CLEAR(r);
    return r;
}

const char *tj_nvrtc_load(int *version) {
    if (!nv.handle) {
        const char *env = getenv("TRACEJIT_NVRTC");
        static const char *sys[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", NULL};
        if (env && *env) {
            if (nvrtc_try(env) < 0) {
                PyErr_Format(PyExc_RuntimeError, "TRACEJIT_NVRTC=%s: not a loadable NVRTC "
                             "library (%s)", env, dlerror() ? dlerror() : "missing symbols");
                return NULL;
            }
        }
        for (int i = 0; !nv.handle && sys[i]; i++) nvrtc_try(sys[i]);
        if (!nv.handle) {
            PyObject *c = bundled_candidates();
            if (!c) return NULL;
            for (Py_ssize_t i = 0; !nv.handle && i < PyList_GET_SIZE(c); i++) {
                const char *p = PyUnicode_AsUTF8(PyList_GET_ITEM(c, i));
                if (!p) { Py_DECREF(c); return NULL; }
                nvrtc_try(p);
            }
            if (!nv.handle) {
                PyErr_Format(PyExc_RuntimeError,
                             "no NVRTC: tried libnvrtc.so.13, libnvrtc.so.12, libnvrtc.so and %R "
                             "(pip install nvidia-cuda-nvrtc-cu12, or set TRACEJIT_NVRTC to "
                             "the library's path)", c);
                Py_DECREF(c);
                return NULL;
            }
            Py_DECREF(c);
        }
    }
    if (version) *version = nv.major * 1000 + nv.minor * 10;
    return nv.path;
}

/* "<what>: <NVRTC's error string>" as RuntimeError. NULL. */
static PyObject *nvrtc_fail(int r, const char *what) {
    PyErr_Format(PyExc_RuntimeError, "NVRTC: %s failed: %s", what, nv.GetErrorString(r));
    return NULL;
}

/* CompileError(what + log + numbered source), its .source the numbered source. */
static void compile_error(PyObject *cls, const char *log, const char *source) {
    PyObject *src = PyUnicode_FromString(source);
    PyObject *lines = src ? PyUnicode_Splitlines(src, 0) : NULL;
    PyObject *parts = lines ? PyList_New(0) : NULL;
    for (Py_ssize_t i = 0; parts && i < PyList_GET_SIZE(lines); i++) {
        PyObject *l = PyUnicode_FromFormat("%4zd | %U\n", i + 1, PyList_GET_ITEM(lines, i));
        if (!l || PyList_Append(parts, l) < 0) Py_CLEAR(parts);
        Py_XDECREF(l);
    }
    PyObject *empty = parts ? PyUnicode_FromString("") : NULL;
    PyObject *numbered = empty ? PyUnicode_Join(empty, parts) : NULL;
    PyObject *msg = numbered ? PyUnicode_FromFormat("NVRTC failed to compile the generated "
                                                    "CUDA C:\n%s\n--- generated source ---\n%U",
                                                    log, numbered)
                             : NULL;
    PyObject *exc = msg ? PyObject_CallOneArg(cls, msg) : NULL;
    if (exc && PyObject_SetAttrString(exc, "source", numbered) == 0) PyErr_SetObject(cls, exc);
    Py_XDECREF(exc); Py_XDECREF(msg); Py_XDECREF(numbered); Py_XDECREF(empty);
    Py_XDECREF(parts); Py_XDECREF(lines); Py_XDECREF(src);
}

PyObject *tj_nvrtc_compile(const char *source, int cc, const char *include_dir,
                           PyObject *compile_error_cls, int *is_ptx, PyObject **log) {
    *log = NULL;
    if (!tj_nvrtc_load(NULL)) return NULL;
    /* SASS for the GPU when NVRTC knows it; else PTX for the newest architecture it
     * knows, which a newer driver compiles (never PTX newer than the driver reads) */
    int known = 0, newest = nv.archs[nv.n_archs - 1];
    for (int i = 0; i < nv.n_archs; i++) known |= nv.archs[i] == cc;
    *is_ptx = !known;
    char arch[64], inc[1100], libc[1100];
    snprintf(arch, sizeof arch, known ? "--gpu-architecture=sm_%d" : "--gpu-architecture=compute_%d",
             known ? cc : (cc < newest ? cc : newest));
    snprintf(inc, sizeof inc, "--include-path=%s", include_dir);
    snprintf(libc, sizeof libc, "--include-path=%s/cuda", include_dir);   /* <math.h>, ... */
    /* every function a device function (the shared element helpers carry no
     * __device__); no contraction into fma, so arithmetic rounds as on the CPU */
    const char *opts[] = {arch, inc, libc, "--std=c++17", "--device-as-default-execution-space",
                          "--fmad=false"};
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    nvrtc_prog prog = NULL;
    int r = nv.CreateProgram(&prog, source, "tracejit.cu", 0, NULL, NULL);
    if (r != 0) return nvrtc_fail(r, "nvrtcCreateProgram");
    PyObject *out = NULL;
    int rc = nv.CompileProgram(prog, n_opts, opts);
    size_t n = 0;
    char *text = NULL;
    if (nv.GetProgramLogSize(prog, &n) == 0 && (text = PyMem_Malloc(n + 1))) {
        text[0] = 0;
        if (nv.GetProgramLog(prog, text) != 0) text[0] = 0;
        text[n] = 0;
    }
    if (!text) { PyErr_NoMemory(); goto done; }
    if (rc != 0) {
        if (rc == 6) compile_error(compile_error_cls, text, source);   /* COMPILATION */
        else nvrtc_fail(rc, "nvrtcCompileProgram");
        goto done;
    }
    size_t size = 0;
    r = *is_ptx ? nv.GetPTXSize(prog, &size) : nv.GetCUBINSize(prog, &size);
    if (r != 0) { nvrtc_fail(r, *is_ptx ? "nvrtcGetPTXSize" : "nvrtcGetCUBINSize"); goto done; }
    if (!(out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size))) goto done;
    r = *is_ptx ? nv.GetPTX(prog, PyBytes_AS_STRING(out)) : nv.GetCUBIN(prog, PyBytes_AS_STRING(out));
    if (r != 0) { Py_CLEAR(out); nvrtc_fail(r, *is_ptx ? "nvrtcGetPTX" : "nvrtcGetCUBIN"); goto done; }
    if (!(*log = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace"))) Py_CLEAR(out);
done:
    PyMem_Free(text);
    nv.DestroyProgram(&prog);
    return out;
}

/* ---- hooks for the tests (module.c's _nvrtc_*, _cuda_*) ------------------------- */

static char include_dir[1024];
void tj_cuda_set_include(const char *dir) { snprintf(include_dir, sizeof include_dir, "%s", dir); }
const char *tj_cuda_include(void) { return include_dir; }

/* _nvrtc_compile(source, cc) -> (image bytes, log str, is_ptx bool) */
PyObject *tj_py_nvrtc_compile(PyObject *m, PyObject *args) {
    const char *src;
    int cc, is_ptx = 0;
    if (!PyArg_ParseTuple(args, "si:_nvrtc_compile", &src, &cc)) return NULL;
    PyObject *log = NULL;
    PyObject *img = tj_nvrtc_compile(src, cc, include_dir, tj_state_of(m)->CompileError, &is_ptx,
                                     &log);
    if (!img) return NULL;
    return Py_BuildValue("(NNO)", img, log, is_ptx ? Py_True : Py_False);
}

/* _nvrtc_version() -> (major, minor, path); RuntimeError without NVRTC */
PyObject *tj_py_nvrtc_version(PyObject *m, PyObject *unused) {
    const char *path = tj_nvrtc_load(NULL);
    return path ? Py_BuildValue("(iis)", nv.major, nv.minor, path) : NULL;
}

/* _cuda_device(ordinal) -> (name, cc major, cc minor, multiprocessors) */
PyObject *tj_py_cuda_device(PyObject *m, PyObject *arg) {
    long ordinal = PyLong_AsLong(arg);
    if (ordinal == -1 && PyErr_Occurred()) return NULL;
    if (ordinal < 0 || ordinal > TJ_CUDA_MAX_DEVICES) ordinal = -1;   /* refused below */
    const tj_cuda_device *d = tj_cuda_device_get((int)ordinal);
    return d ? Py_BuildValue("(siii)", d->name, d->cc_major, d->cc_minor, d->sms) : NULL;
}

/* _cuda_run(ordinal, image, kernels, params, stream): loads image on the device's
 * primary context, launches kernels [(name, grid, block)] in order on `stream` (a
 * CUstream as int; 0 the legacy default stream), each with the one by-value
 * parameter block `params`, waits for the stream and unloads. */
PyObject *tj_py_cuda_run(PyObject *m, PyObject *args) {
    int ordinal;
    Py_buffer img, par;
    PyObject *kernels;
    unsigned long long stream;
    if (!PyArg_ParseTuple(args, "iy*O!y*K:_cuda_run", &ordinal, &img, &PyList_Type, &kernels,
                          &par, &stream))
        return NULL;
    PyObject *r = NULL;
    tj_cumod mod = NULL;
    const tj_cuda_device *d = tj_cuda_device_get(ordinal);
    if (!d || tj_cuda_device_enter(d) < 0) goto done;
    if (tj_cuda_check(drv.ModuleLoadData(&mod, img.buf), "cuModuleLoadData") < 0) goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(kernels); i++) {
        const char *name;
        long long grid;
        int block;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(kernels, i), "sLi", &name, &grid, &block)) goto done;
        if (grid <= 0) continue;
        tj_cufn fn;
        void *params[] = {par.buf};
        if (tj_cuda_check(drv.ModuleGetFunction(&fn, mod, name), "cuModuleGetFunction") < 0 ||
            tj_cuda_check(drv.LaunchKernel(fn, (unsigned)grid, 1, 1, (unsigned)block, 1, 1, 0,
                                           (tj_custream)(uintptr_t)stream, params, NULL),
                          "cuLaunchKernel") < 0)
            goto done;
    }
    if (tj_cuda_check(drv.StreamSynchronize((tj_custream)(uintptr_t)stream),
                      "cuStreamSynchronize") < 0)
        goto done;
    r = Py_NewRef(Py_None);
done:
    if (mod) {
        if (!r) drv.StreamSynchronize((tj_custream)(uintptr_t)stream);   /* before unloading */
        drv.ModuleUnload(mod);
    }
    PyBuffer_Release(&img);
    PyBuffer_Release(&par);
    return r;
}
