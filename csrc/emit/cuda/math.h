/* <math.h> for NVRTC, which has no C library headers: the math functions are CUDA's
 * own (declared by NVRTC itself, float and double overloads); this adds the macros the
 * shared element helpers (prims.c, vmath.h, prims_special.h) use. Found first on
 * NVRTC's include path (csrc/backend/cuda_api.c); never seen by a C compiler. */
#ifndef TJ_CUDA_MATH_H
#define TJ_CUDA_MATH_H
#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fc00000)
#endif
