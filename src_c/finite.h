/* The finiteness scan, the one test for NaN and infinity behind every check of the library's arrays:
 * _validation's check_finite (every argument and layer input screened at the boundary), fit's gradient
 * scan and the batch gatherer's row screen (cnn_core/_finite.pyx). n contiguous values, as their bit
 * patterns, float32 and float64, one loop per instruction-set level (cpu.h). */
#ifndef CNN_CORE_FINITE_H
#define CNN_CORE_FINITE_H
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"

/* Once, at import (cnn_core._finite): where the loops read the level in use; baseline until then. */
void cnn_finite_init(cnn_simd_level_fn simd_level);

/* 1 when one of the n values (as their bit patterns) is NaN or +-inf: exponent bits all ones. */
int cnn_nonfinite_f32(const uint32_t *b, ptrdiff_t n);
int cnn_nonfinite_f64(const uint64_t *b, ptrdiff_t n);
#endif
