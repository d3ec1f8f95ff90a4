/* <stdint.h> for NVRTC (see math.h here): the fixed-width types of the CUDA targets. */
#ifndef TJ_CUDA_STDINT_H
#define TJ_CUDA_STDINT_H
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
#endif
