/* op_constants.h - the numbers of backend.h's contract that the GPU's
 * kernels (CUDA C++, which cannot include backend.h's C declarations)
 * need as well: one definition for both sides. */
#ifndef EVO_OP_CONSTANTS_H
#define EVO_OP_CONSTANTS_H

/* The label that marks a token without a loss target (PyTorch's default
 * ignore_index, what evo-pack writes for padding and prompt tokens). */
enum { EVO_IGNORE_LABEL = -100 };

/* The chunks of sqnorm's sum (backend.h). */
enum { EVO_SQNORM_CHUNKS = 256 };

#endif
