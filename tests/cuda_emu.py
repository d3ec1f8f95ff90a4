"""A CPU emulator of the CUDA backend's kernels, for tests without a GPU: the generated
CUDA C++ (CompiledFunction._cuda_source) is compiled by the system's C++ compiler with
the few CUDA names it uses defined here (blockIdx, threadIdx, __shared__, __syncthreads,
bit casts), each block's threads run as fibers (ucontext) that switch at every
__syncthreads, so a barrier means what it means on the GPU; the parameter block is
filled from NumPy arrays as the runtime fills it (csrc/backend/cuda.c). Grids are cut
to a few blocks: the kernels' grid-stride loops cover the rest, as on a GPU whose grid
is smaller than the work."""
import ctypes
import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np

import tracejit

PRELUDE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <ucontext.h>
#undef __GLIBC__   /* prims.c's libmvec declarations are C's, not C++'s */
struct tj_emu_dim { unsigned x; };
static tj_emu_dim threadIdx, blockIdx, blockDim, gridDim;
static void tj_emu_sync(void);
#define __global__
#define __launch_bounds__(n)
#define __shared__ static
#define __syncthreads() tj_emu_sync()
static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
static inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
/* one fiber at a time: a compare-and-swap is a plain one */
static inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long cmp,
                                           unsigned long long val) {
    unsigned long long old = *p;
    if (old == cmp) *p = val;
    return old;
}
#define __CUDACC_RTC__ 1
"""

DRIVER = r"""
#define TJ_EMU_STACK (1 << 16)
static ucontext_t tj_emu_main, tj_emu_ctx[1024];
static int tj_emu_cur, tj_emu_done[1024];
static void (*tj_emu_fn)(const tj_args);
static tj_args tj_emu_A;

static void tj_emu_sync(void) {
    int me = tj_emu_cur;
    swapcontext(&tj_emu_ctx[me], &tj_emu_main);
    threadIdx.x = (unsigned)me;
}

static void tj_emu_entry(int t) {
    tj_emu_fn(tj_emu_A);
    tj_emu_done[t] = 1;
}

/* Runs kernel fn over grid blocks of block threads with the parameter block params. */
extern "C" int tj_emu_run(void (*fn)(const tj_args), long long grid, int block,
                          const void *params) {
    static char *stacks;
    if (block > 1024) return -1;
    if (!stacks && !(stacks = (char *)malloc((size_t)1024 * TJ_EMU_STACK))) return -1;
    memcpy(&tj_emu_A, params, sizeof tj_emu_A);
    tj_emu_fn = fn;
    gridDim.x = (unsigned)grid;
    blockDim.x = (unsigned)block;
    for (long long b = 0; b < grid; b++) {
        blockIdx.x = (unsigned)b;
        for (int t = 0; t < block; t++) {
            getcontext(&tj_emu_ctx[t]);
            tj_emu_ctx[t].uc_stack.ss_sp = stacks + (size_t)t * TJ_EMU_STACK;
            tj_emu_ctx[t].uc_stack.ss_size = TJ_EMU_STACK;
            tj_emu_ctx[t].uc_link = &tj_emu_main;
            makecontext(&tj_emu_ctx[t], (void (*)(void))tj_emu_entry, 1, t);
            tj_emu_done[t] = 0;
        }
        for (int running = 1; running;) {   /* one pass: every thread to its next barrier */
            running = 0;
            for (int t = 0; t < block; t++) {
                if (tj_emu_done[t]) continue;
                running = 1;
                tj_emu_cur = t;
                threadIdx.x = (unsigned)t;
                swapcontext(&tj_emu_main, &tj_emu_ctx[t]);
            }
        }
    }
    return 0;
}
"""

INCLUDE = os.path.join(os.path.dirname(tracejit.__file__), "_include")
PACK = {"bool": "?7x", "int32": "i4x", "int64": "q", "float32": "f4x", "float64": "d"}
MAX_GRID = 3


def compiler():
    return shutil.which(os.environ.get("CXX", "g++"))


def colmajor_gemm(ta, tb, m, n, k, X, ldx, Y, ldy, C, ldc):
    """C = op(X) op(Y) on flat NumPy buffers, with cuBLAS's column-major indexing."""
    i, p, j = np.arange(m)[:, None], np.arange(k)[None, :], np.arange(n)[None, :]
    opx = X[p + i * ldx] if ta else X[i + p * ldx]
    pk = np.arange(k)[:, None]
    opy = Y[j + pk * ldy] if tb else Y[pk + j * ldy]
    out = opx @ opy
    for jj in range(n):
        C[np.arange(m) + jj * ldc] = out[:, jj]


CUBLAS_CALLS = [0]   # products computed as cuBLAS would (the tests check it ran)


def _cublas_gemm(prog, gemm, params):
    """A product as the runtime hands it to cuBLAS (_C._cublas_resolve), computed here
    on the same memory; False when cuBLAS could not take it (the kernel runs)."""
    from tracejit import _C
    desc = prog["gemms"][gemm]
    r = _C._cublas_resolve(desc, params, prog["n_slots"], prog["nd"])
    if r is None:
        return False
    ptrs, strides, (ta, tb, m, n, k, lda, ldb, ldc, swap) = r
    ctype = ctypes.c_double if desc[0] == 10 else ctypes.c_float
    dtype = np.float64 if ctype is ctypes.c_double else np.float32

    def flat(ptr, count):
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctype)), (max(count, 1),))
    x, y = (1, 0) if swap else (0, 1)
    for bi in range(desc[4]):
        ext = [1 + (m - 1 + (k - 1) * lda if not ta else k - 1 + (m - 1) * lda),
               1 + (k - 1 + (n - 1) * ldb if not tb else n - 1 + (k - 1) * ldb)]
        X = flat(ptrs[x] + bi * strides[x][2] * np.dtype(dtype).itemsize, ext[0])
        Y = flat(ptrs[y] + bi * strides[y][2] * np.dtype(dtype).itemsize, ext[1])
        C = flat(ptrs[2] + bi * strides[2][2] * np.dtype(dtype).itemsize, m + (n - 1) * ldc)
        colmajor_gemm(ta, tb, m, n, k, X, lda, Y, ldb, C, ldc)
    CUBLAS_CALLS[0] += 1
    return True


def run(fn, *args, max_grid=None, cublas=False):
    """fn's CUDA program run on NumPy arrays, torch CPU tensors and Python numbers (the
    arguments, in order, no pytrees); its results as NumPy arrays. A gather's index out of bounds raises the
    IndexError the runtime raises from the program's error record. max_grid: the blocks
    a launch runs at most (default MAX_GRID). cublas: a product the runtime would hand
    to cuBLAS is computed as cuBLAS would from what the runtime passes it (the tiled
    kernel otherwise)."""
    prog = tracejit.compile(fn)._cuda_source(*args)
    with tempfile.TemporaryDirectory() as d:
        src, lib = os.path.join(d, "k.cpp"), os.path.join(d, "k.so")
        with open(src, "w") as f:
            f.write(PRELUDE + prog["source"] + DRIVER)
        r = subprocess.run([compiler(), "-std=gnu++17", "-O1", "-fPIC", "-shared", "-w",
                            f"-I{INCLUDE}", src, "-o", lib], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-4000:]
        so = ctypes.CDLL(lib)
        n, nd = prog["n_slots"], prog["nd"]
        P, S = [0] * n, [[0] * nd for _ in range(n)]
        keep = []
        for slot, (kind, index, dtype) in enumerate(prog["leaf_slots"]):
            if kind == "const":
                continue
            assert kind in ("arg", "capture"), kind
            a = args[index] if kind == "arg" else prog["captures"][index]
            if type(a).__module__ == "torch":   # a torch CPU tensor: its memory as NumPy's
                a = a.numpy()
            if isinstance(a, np.ndarray):
                keep.append(a)
                P[slot] = a.ctypes.data
                for k in range(min(a.ndim, nd)):   # (a flat read needs none: nd may be less)
                    S[slot][k] = a.strides[k]
            else:
                P[slot] = struct.unpack("Q", struct.pack(PACK[dtype], a))[0]
        scratch = np.zeros(max(prog["scratch_bytes"], 1), np.uint8)
        work = np.zeros(max(prog["work_bytes"], 1), np.uint8)
        outs = {}
        for entry in prog["scratch"] + prog["outputs"]:
            slot, dtype, shape = entry[:3]
            t = np.empty(shape, dtype)
            if len(entry) == 4:
                P[slot] = scratch.ctypes.data + entry[3]
            else:
                outs[slot] = t
                P[slot] = t.ctypes.data
            for k in range(len(shape)):
                S[slot][k] = t.strides[k]
        params = struct.pack(f"{n}Q{n * nd}qQ", *P, *[s for row in S for s in row],
                             work.ctypes.data)
        assert len(params) == prog["param_bytes"]
        for name, grid, block, gemm in prog["kernels"]:
            if grid <= 0:
                continue
            if cublas and gemm >= 0 and _cublas_gemm(prog, gemm, params):
                continue
            k = ctypes.cast(getattr(so, name), ctypes.c_void_p)
            rc = so.tj_emu_run(k, ctypes.c_longlong(min(grid, max_grid or MAX_GRID)),
                               ctypes.c_int(block),
                               ctypes.c_char_p(params))
            assert rc == 0
        del so
        if prog["err_off"] >= 0:
            flag, index, size, axis = work[prog["err_off"]:prog["err_off"] + 32].view(np.int64)
            if flag:
                raise IndexError(f"index {index} is out of bounds for axis {axis} with size {size}")
        return tuple(outs[slot] for slot in prog["out_slot_of"])
