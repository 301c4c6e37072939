/* cuda_bf16.h (the CPU emulator's): bf16 as bits16.h has it. */
#include "bits16.h"
