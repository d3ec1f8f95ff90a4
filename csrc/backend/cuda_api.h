/* cuda_api.h: the CUDA driver and NVRTC, opened with dlopen at first use
 * (csrc/backend/cuda_api.c). Nothing is linked at build time and no CUDA header is
 * needed: the few types and entry points used are declared here. A machine without a
 * GPU never calls these (tracejit runs as on any CPU machine); NVRTC alone loads
 * without a GPU, so generated CUDA C compiles to a cubin anywhere (the codegen tests).
 * Every call's result is checked; a failure is a Python exception naming the call and
 * the driver's own error name and text. GIL held for every function here. */
#ifndef TJ_CUDA_API_H
#define TJ_CUDA_API_H

#include "tracejit.h"

typedef int tj_curesult;                     /* CUresult: 0 is CUDA_SUCCESS */
typedef int tj_cudevice;                     /* CUdevice */
typedef struct tj_cuctx_st *tj_cuctx;        /* CUcontext */
typedef struct tj_cumod_st *tj_cumod;        /* CUmodule */
typedef struct tj_cufn_st *tj_cufn;          /* CUfunction */
typedef struct tj_custream_st *tj_custream;  /* CUstream (NULL: the legacy default) */
typedef unsigned long long tj_cuptr;         /* CUdeviceptr */

/* The driver's entry points, resolved by their versioned names (a plain
 * dlsym("cuMemAlloc") is the legacy 32-bit one). */
typedef struct {
    tj_curesult (*Init)(unsigned);
    tj_curesult (*DriverGetVersion)(int *);
    tj_curesult (*DeviceGetCount)(int *);
    tj_curesult (*DeviceGet)(tj_cudevice *, int);
    tj_curesult (*DeviceGetAttribute)(int *, int, tj_cudevice);
    tj_curesult (*DeviceGetName)(char *, int, tj_cudevice);
    tj_curesult (*DevicePrimaryCtxRetain)(tj_cuctx *, tj_cudevice);
    tj_curesult (*CtxGetCurrent)(tj_cuctx *);
    tj_curesult (*CtxSetCurrent)(tj_cuctx);
    tj_curesult (*ModuleLoadData)(tj_cumod *, const void *);
    tj_curesult (*ModuleUnload)(tj_cumod);
    tj_curesult (*ModuleGetFunction)(tj_cufn *, tj_cumod, const char *);
    tj_curesult (*LaunchKernel)(tj_cufn, unsigned, unsigned, unsigned, unsigned, unsigned,
                                unsigned, unsigned, tj_custream, void **, void **);
    tj_curesult (*MemAlloc)(tj_cuptr *, size_t);              /* cuMemAlloc_v2 */
    tj_curesult (*MemFree)(tj_cuptr);                          /* cuMemFree_v2 */
    tj_curesult (*MemcpyHtoDAsync)(tj_cuptr, const void *, size_t, tj_custream);   /* _v2 */
    tj_curesult (*MemcpyDtoHAsync)(void *, tj_cuptr, size_t, tj_custream);         /* _v2 */
    tj_curesult (*PointerGetAttribute)(void *, int, tj_cuptr);
    tj_curesult (*StreamSynchronize)(tj_custream);
    tj_curesult (*GetErrorName)(tj_curesult, const char **);
    tj_curesult (*GetErrorString)(tj_curesult, const char **);
} tj_cuda_driver;

/* The driver, loaded and cuInit'ed at the first call; NULL + RuntimeError when there
 * is none (no libcuda.so.1, no device, cuInit failed: the message says which). */
const tj_cuda_driver *tj_cuda_driver_get(void);
/* -1 + RuntimeError("CUDA driver: <what> failed: <NAME>: <text>") for a failed call;
 * 0 for CUDA_SUCCESS. */
int tj_cuda_check(tj_curesult r, const char *what);

/* A device as a plan uses it: its primary context (the one torch and CuPy use),
 * retained once and kept for the process, made current by tj_cuda_device_enter. */
typedef struct {
    int ordinal, cc_major, cc_minor, sms;
    tj_cuctx ctx;
    char name[128];
} tj_cuda_device;
/* Device `ordinal`, its primary context retained at first use. NULL + exception. */
const tj_cuda_device *tj_cuda_device_get(int ordinal);
/* Makes d's context current on this thread (the caller's thread may have none, or
 * another device's). 0; -1 + exception. */
int tj_cuda_device_enter(const tj_cuda_device *d);

/* ---- NVRTC ---------------------------------------------------------------------- */
/* The library's path once loaded (TRACEJIT_NVRTC, the system's libnvrtc.so.13, .12,
 * libnvrtc.so, then the nvidia-cuda-nvrtc wheels' and torch's bundled copies, whose
 * directories tracejit._cuda.nvrtc_candidates() lists), or NULL + RuntimeError naming
 * every place tried. *version: major * 1000 + minor * 10. */
const char *tj_nvrtc_load(int *version);
/* Compiles CUDA C++ `source` for sm_<cc> (e.g. 90): a cubin (SASS for that GPU) when
 * NVRTC knows the architecture, else PTX for the newest one it knows (the driver
 * JIT-compiles it; *is_ptx set). include_dir: where ops.h and prims*.h are shipped.
 * A new bytes object, and in *log (a new str, may be empty) NVRTC's log: warnings
 * are there even on success. NULL + exception: CompileError (compile_error, with the
 * log and the numbered source) or RuntimeError (no NVRTC). */
PyObject *tj_nvrtc_compile(const char *source, int cc, const char *include_dir,
                           PyObject *compile_error, int *is_ptx, PyObject **log);

/* ---- cuBLAS (csrc/backend/cublas.c) --------------------------------------------- */
/* How C[M,N] = A[M,K] B[K,N] (element strides am, ak, bk, bn, cm, cn) is handed to
 * cuBLAS's column-major GEMM: ops ta/tb (0 N, 1 T), sizes, leading dims; swap: C is
 * row-major, computed as C' = B'A' (B the first operand). 0, or -1: not representable. */
typedef struct { int ta, tb, swap; int64_t m, n, k, lda, ldb, ldc; } tj_gemm_map;
int tj_cublas_map(int64_t M, int64_t N, int64_t K, int64_t am, int64_t ak, int64_t bk,
                  int64_t bn, int64_t cm, int64_t cn, tj_gemm_map *g);
/* Product p on `stream` of device `ordinal`, its slots' pointers bp[slot] and byte
 * strides bs[slot * nd + dim] (the kernels' parameter block): 0 launched; 1 cuBLAS is
 * not available or the layout does not map (run the tiled kernel; no exception);
 * -1 + exception (a cuBLAS call failed). */
int tj_cublas_gemm(int ordinal, void *stream, const tj_cuda_gemm *p, const uint64_t *bp,
                   const int64_t *bs, int nd);
PyObject *tj_py_cublas(PyObject *m, PyObject *unused);
PyObject *tj_py_cublas_map(PyObject *m, PyObject *args);
PyObject *tj_py_cublas_resolve(PyObject *m, PyObject *args);

/* ---- hooks for the tests (csrc/module.c's table) ---------------------------------- */
void tj_cuda_set_include(const char *dir);   /* where NVRTC finds prims.c and ops.h */
const char *tj_cuda_include(void);
PyObject *tj_py_nvrtc_compile(PyObject *m, PyObject *args);
PyObject *tj_py_nvrtc_version(PyObject *m, PyObject *unused);
PyObject *tj_py_cuda_device(PyObject *m, PyObject *arg);
PyObject *tj_py_cuda_run(PyObject *m, PyObject *args);

#endif
