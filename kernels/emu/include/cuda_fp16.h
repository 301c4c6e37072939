/* cuda_fp16.h (the CPU emulator's): fp16 as bits16.h has it. */
#include "bits16.h"
