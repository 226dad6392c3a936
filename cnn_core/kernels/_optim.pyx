# distutils: extra_compile_args = -ffp-contract=off
# distutils: sources = src_c/optim.c
# distutils: depends = src_c/optim.h src_c/cpu.h
"""Compiled optimizer kernels for the training loop: the finiteness scan of every gradient in one call, and
SGD's and Adam's update of one parameter in one pass (cnn_core.optim.SGD, Adam and cnn_core.training call
them on arrays they have checked).

Arrays are taken through the buffer protocol (any C-contiguous float32/float64 array, any number of
dimensions), which costs a fraction of a microsecond per array: a LeNet-5 step has ten parameters, and
NumPy's per-ufunc overhead (a microsecond or more per call, four to five calls per parameter) was most of
the optimizer's time at batch 64. The loops are src_c/optim.c's, one per instruction-set level (the
process-wide one of cnn_core.set_simd), built with -ffp-contract=off: no multiply-add is fused, whatever
CFLAGS a build passes, so sgd_step rounds as NumPy's ufuncs do at every level.
"""
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cnn_core._config cimport simd_level
from cnn_core.kernels._buffer cimport float_kind
from libc.stdint cimport uint32_t, uint64_t


cdef extern from "optim.h" nogil:
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    void cnn_optim_init(cnn_simd_level_fn simd_level)
    void cnn_sgd_f32(float *p, const float *g, float *buf, Py_ssize_t n, float lr, float mu, float damp1,
                     float wd, int use_wd, int mode, int nesterov)
    void cnn_sgd_f64(double *p, const double *g, double *buf, Py_ssize_t n, double lr, double mu,
                     double damp1, double wd, int use_wd, int mode, int nesterov)
    int cnn_nonfinite_f32(const uint32_t *b, Py_ssize_t n)
    ctypedef struct cnn_adam_params_f32:
        float beta1, one_minus_beta1, beta2, one_minus_beta2, wd, decay, bias2_sqrt, eps, step_size
        int decay_mode
    ctypedef struct cnn_adam_params_f64:
        double beta1, one_minus_beta1, beta2, one_minus_beta2, wd, decay, bias2_sqrt, eps, step_size
        int decay_mode
    void cnn_adam_f32(float *p, const float *g, float *m, float *v, float *vmax, Py_ssize_t n,
                      const cnn_adam_params_f32 *h)
    void cnn_adam_f64(double *p, const double *g, double *m, double *v, double *vmax, Py_ssize_t n,
                      const cnn_adam_params_f64 *h)
    int cnn_nonfinite_f64(const uint64_t *b, Py_ssize_t n)


cnn_optim_init(simd_level)


def all_finite(arrays) -> bool:
    """True when no element of any array in the sequence `arrays` (C-contiguous float32/float64 arrays) is
    NaN or infinite; None entries are skipped. One serial pass over each (a step's gradients are far too
    small to pay for waking threads)."""
    cdef Py_buffer v
    cdef bint bad
    cdef int kind
    for a in arrays:
        if a is None:
            continue
        PyObject_GetBuffer(a, &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        kind = float_kind(&v)
        with nogil:
            if kind == 4:
                bad = cnn_nonfinite_f32(<const uint32_t *>v.buf, v.len // 4)
            elif kind == 8:
                bad = cnn_nonfinite_f64(<const uint64_t *>v.buf, v.len // 8)
        PyBuffer_Release(&v)
        if kind == 0:
            raise TypeError(f"arrays: expected float32/float64 arrays, got {getattr(a, 'dtype', type(a).__name__)}")
        if bad:
            return False
    return True


def sgd_step(p, g, buf, double lr, double momentum, double dampening, double weight_decay, bint nesterov,
             bint first) -> None:
    """One SGD update of the parameter array p (in place) from its gradient g, PyTorch's formulas:

        g' = g + weight_decay * p
        buf = g' (first step), else momentum * buf + (1 - dampening) * g'      (when momentum != 0)
        g' = g' + momentum * buf (nesterov), else buf                           (when momentum != 0)
        p = p - lr * g'

    p, g and buf (the momentum buffer, updated in place; None without momentum): C-contiguous arrays of one
    float dtype and size (unchecked beyond the buffer's kind). Each operation is rounded in the arrays' dtype
    in the order NumPy's ufuncs take (the scalars cast to that dtype first, no fused multiply-add), so the
    result equals the ufunc sequence of cnn_core.optim.SGD bit for bit."""
    cdef Py_buffer vp, vg, vb
    cdef bint has_buf = momentum != 0.0
    cdef int mode = 0 if not has_buf else (1 if first else (2 if dampening == 0.0 else 3))
    cdef int kind
    PyObject_GetBuffer(p, &vp, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)
    try:
        PyObject_GetBuffer(g, &vg, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        try:
            if has_buf:
                PyObject_GetBuffer(buf, &vb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)
            else:
                vb.buf = NULL
            try:
                kind = float_kind(&vp)
                if kind == 0 or float_kind(&vg) != kind or vg.len != vp.len or (has_buf and (float_kind(&vb) != kind
                                                                                          or vb.len != vp.len)):
                    raise TypeError("sgd_step: expected p, g and buf of one float dtype and size")
                with nogil:
                    if kind == 4:
                        cnn_sgd_f32(<float *>vp.buf, <const float *>vg.buf, <float *>vb.buf, vp.len // 4,
                                    <float>lr, <float>momentum, <float>(1.0 - dampening), <float>weight_decay,
                                    weight_decay != 0.0, mode, nesterov)
                    else:
                        cnn_sgd_f64(<double *>vp.buf, <const double *>vg.buf, <double *>vb.buf, vp.len // 8, lr,
                                    momentum, 1.0 - dampening, weight_decay, weight_decay != 0.0, mode, nesterov)
            finally:
                if has_buf:
                    PyBuffer_Release(&vb)
        finally:
            PyBuffer_Release(&vg)
    finally:
        PyBuffer_Release(&vp)


def adam_step(p, g, m, v, vmax, double beta1, double beta2, double eps, double wd, bint decoupled,
              double step_size, double bias2_sqrt, double decay) -> None:
    """One Adam/AdamW update of the parameter array p (in place) from its gradient g, with the moment
    buffers m, v and (amsgrad; else None) vmax updated in place: cnn_core.optim.Adam's formulas, each
    operation rounded in the arrays' dtype in the order of its NumPy sequence (the scalars cast to that
    dtype first: step_size = lr / (1 - beta1**t), bias2_sqrt = sqrt(1 - beta2**t), decay = 1 - lr * wd),
    so the result equals the ufuncs bit for bit. Arrays: C-contiguous, one float dtype and size."""
    cdef Py_buffer views[5]
    cdef int held = 0, kind = 0, k
    cdef bint ams = vmax is not None
    cdef cnn_adam_params_f32 h32
    cdef cnn_adam_params_f64 h64
    arrays = (p, m, v, vmax, g) if ams else (p, m, v, g)
    try:
        for k in range(len(arrays)):
            PyObject_GetBuffer(arrays[k], &views[k], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                               (0 if k == len(arrays) - 1 else PyBUF_WRITABLE))
            held += 1
            if k == 0:
                kind = float_kind(&views[0])
            if kind == 0 or float_kind(&views[k]) != kind or views[k].len != views[0].len:
                raise TypeError("adam_step: expected p, g, m, v (and vmax) of one float dtype and size")
        mode = 0 if wd == 0.0 else (2 if decoupled else 1)
        if kind == 4:
            h32 = cnn_adam_params_f32(<float>beta1, <float>(1.0 - beta1), <float>beta2, <float>(1.0 - beta2), <float>wd,
                               <float>decay, <float>bias2_sqrt, <float>eps, <float>step_size, mode)
            with nogil:
                cnn_adam_f32(<float *>views[0].buf, <const float *>views[held - 1].buf, <float *>views[1].buf,
                             <float *>views[2].buf, <float *>views[3].buf if ams else NULL, views[0].len // 4,
                             &h32)
        else:
            h64 = cnn_adam_params_f64(beta1, 1.0 - beta1, beta2, 1.0 - beta2, wd, decay, bias2_sqrt, eps, step_size, mode)
            with nogil:
                cnn_adam_f64(<double *>views[0].buf, <const double *>views[held - 1].buf, <double *>views[1].buf,
                             <double *>views[2].buf, <double *>views[3].buf if ams else NULL, views[0].len // 8,
                             &h64)
    finally:
        for k in range(held):
            PyBuffer_Release(&views[k])
