/* <stdbool.h> for NVRTC (see math.h here): bool is C++'s own. */
#ifndef TJ_CUDA_STDBOOL_H
#define TJ_CUDA_STDBOOL_H
#endif
