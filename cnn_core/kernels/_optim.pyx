# distutils: extra_compile_args = -ffp-contract=off
# distutils: sources = src_c/optim.c
# distutils: depends = src_c/optim.h src_c/cpu.h src_c/threads.h src_c/thresholds.h
"""Compiled optimizer kernels for the training loop: SGD's and Adam's update of one parameter in one pass
(cnn_core.optim.SGD and Adam call them on arrays they have checked).

Arrays are taken through the buffer protocol (any C-contiguous float32/float64 array, any number of
dimensions), which costs a fraction of a microsecond per array: a LeNet-5 step has ten parameters, and
NumPy's per-ufunc overhead (a microsecond or more per call, four to five calls per parameter) was most of
the optimizer's time at batch 64. The loops are src_c/optim.c's, one per instruction-set level (the
process-wide one of cnn_core.set_simd), built with -ffp-contract=off: no multiply-add is fused, whatever
CFLAGS a build passes, so sgd_step rounds as NumPy's ufuncs do at every level.
"""
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cnn_core._config cimport cnn_array_share, run_team, simd_level, team_size
from cnn_core.kernels._buffer cimport float_kind, row_size


cdef extern from "thresholds.h" nogil:
    Py_ssize_t CNN_OPTIM_MIN_PER_THREAD


cdef extern from "optim.h" nogil:
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    void cnn_optim_init(cnn_simd_level_fn simd_level)
    void cnn_sgd_f32(float *p, const float *g, float *buf, Py_ssize_t n, float lr, float mu, float damp1,
                     float wd, int use_wd, int mode, int nesterov)
    void cnn_sgd_f64(double *p, const double *g, double *buf, Py_ssize_t n, double lr, double mu,
                     double damp1, double wd, int use_wd, int mode, int nesterov)
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


cnn_optim_init(simd_level)


# One parameter of an sgd_step call: its arrays, size, row length (threads.h's cnn_array_share), the team that
# splits it (its first nt threads of the call's team; the others skip it) and its momentum mode (optim.h).
ctypedef struct _SgdArray:
    void *p
    const void *g
    void *buf
    Py_ssize_t n, row
    int nt, mode


# One sgd_step call for its team (run_team): thread t takes share t of every parameter split over more than t
# threads, the shares of one call per parameter, so a thread touches the rows of each weight it wrote in the
# backward pass (threads.h's row shares). Elementwise: any split gives the same bits.
ctypedef struct _SgdCall:
    _SgdArray *arrays
    Py_ssize_t count
    int kind, use_wd, nesterov
    double lr, mu, damp1, wd


cdef void _sgd_share(void *arg, int t) noexcept nogil:
    cdef _SgdCall *c = <_SgdCall *>arg
    cdef _SgdArray *a
    cdef Py_ssize_t i, lo, hi
    for i in range(c.count):
        a = &c.arrays[i]
        if t >= a.nt:
            continue
        lo, hi = cnn_array_share(a.n, a.row, a.nt, t), cnn_array_share(a.n, a.row, a.nt, t + 1)
        if c.kind == 4:
            cnn_sgd_f32(<float *>a.p + lo, <const float *>a.g + lo, NULL if a.buf == NULL else <float *>a.buf + lo,
                        hi - lo, <float>c.lr, <float>c.mu, <float>c.damp1, <float>c.wd, c.use_wd, a.mode,
                        c.nesterov)
        else:
            cnn_sgd_f64(<double *>a.p + lo, <const double *>a.g + lo,
                        NULL if a.buf == NULL else <double *>a.buf + lo, hi - lo, c.lr, c.mu, c.damp1, c.wd,
                        c.use_wd, a.mode, c.nesterov)


cdef bint _same_shape(const Py_buffer *a, const Py_buffer *b) noexcept:
    cdef int d
    if a.ndim != b.ndim:
        return False
    for d in range(a.ndim):
        if a.shape[d] != b.shape[d]:
            return False
    return True


def sgd_step(ps, gs, bufs, firsts, double lr, double momentum, double dampening, double weight_decay,
             bint nesterov) -> None:
    """One SGD update of every parameter array ps[i] (in place) from its gradient gs[i], PyTorch's formulas:

        g' = g + weight_decay * p
        buf = g' (first step), else momentum * buf + (1 - dampening) * g'      (when momentum != 0)
        g' = g' + momentum * buf (nesterov), else buf                           (when momentum != 0)
        p = p - lr * g'

    bufs (the momentum buffers, updated in place) and firsts (whether parameter i takes its first step,
    buf = g') are read only with momentum. The arrays: C-contiguous, one float dtype for every parameter of
    the call, one shape per parameter; anything else raises TypeError or ValueError before an element is
    written (the caller then takes NumPy's ufuncs). Each operation is rounded in the arrays' dtype in the
    order NumPy's ufuncs take (the scalars cast to that dtype first, no fused multiply-add), so the result
    equals the ufunc sequence of cnn_core.optim.SGD bit for bit.

    One call for all the parameters (a Python call per parameter cost ~2 us of a training step): a parameter
    of at least 2 * CNN_OPTIM_MIN_PER_THREAD elements (src_c/thresholds.h) is split over a team in threads.h's
    array shares, the others are updated on the calling thread; the same bits on any number of threads."""
    cdef Py_ssize_t count = len(ps), i, held = 0
    cdef bint has_buf = momentum != 0.0
    cdef int per = 3 if has_buf else 2, nt = 1, t, kind
    cdef _SgdCall c
    if len(gs) != count or (has_buf and (len(bufs) != count or len(firsts) != count)):
        raise ValueError("sgd_step: expected ps, gs, bufs and firsts of one length")
    cdef Py_buffer *views = <Py_buffer *>PyMem_Malloc(max(1, per * count) * sizeof(Py_buffer))
    c.arrays = <_SgdArray *>PyMem_Malloc(max(1, count) * sizeof(_SgdArray))
    try:
        if views == NULL or c.arrays == NULL:
            raise MemoryError()
        c.count, c.kind = count, 0
        for i in range(count):
            PyObject_GetBuffer(ps[i], &views[held], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)
            held += 1
            PyObject_GetBuffer(gs[i], &views[held], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
            held += 1
            if has_buf:
                PyObject_GetBuffer(bufs[i], &views[held], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)
                held += 1
            kind = float_kind(&views[held - per])
            if i == 0:
                c.kind = kind
            for t in range(held - per, held):
                if kind == 0 or kind != c.kind or float_kind(&views[t]) != kind or \
                        not _same_shape(&views[t], &views[held - per]):
                    raise TypeError("sgd_step: expected p, g and buf of one shape, and one float dtype for "
                                    "every parameter")
            c.arrays[i].p, c.arrays[i].g = views[held - per].buf, views[held - per + 1].buf
            c.arrays[i].buf = views[held - 1].buf if has_buf else NULL
            c.arrays[i].n = views[held - per].len // kind
            c.arrays[i].row = row_size(&views[held - per], c.arrays[i].n)
            c.arrays[i].nt = team_size(c.arrays[i].n // CNN_OPTIM_MIN_PER_THREAD)
            c.arrays[i].mode = 0 if not has_buf else (1 if firsts[i] else (2 if dampening == 0.0 else 3))
            nt = max(nt, c.arrays[i].nt)
        c.lr, c.mu, c.damp1, c.wd = lr, momentum, 1.0 - dampening, weight_decay
        c.use_wd, c.nesterov = weight_decay != 0.0, nesterov
        if count:
            with nogil:
                run_team(_sgd_share, &c, nt)
    finally:
        for i in range(held):
            PyBuffer_Release(&views[i])
        PyMem_Free(views)
        PyMem_Free(c.arrays)


# One adam_step call's arguments for its team (run_team), split as sgd_step's.
ctypedef struct _AdamCall:
    void *p
    void *m
    void *v
    void *vmax
    const void *g
    Py_ssize_t n, row
    int nt, kind
    cnn_adam_params_f32 h32
    cnn_adam_params_f64 h64


cdef void _adam_share(void *arg, int t) noexcept nogil:
    cdef _AdamCall *c = <_AdamCall *>arg
    cdef Py_ssize_t lo = cnn_array_share(c.n, c.row, c.nt, t), hi = cnn_array_share(c.n, c.row, c.nt, t + 1)
    if c.kind == 4:
        cnn_adam_f32(<float *>c.p + lo, <const float *>c.g + lo, <float *>c.m + lo, <float *>c.v + lo,
                     NULL if c.vmax == NULL else <float *>c.vmax + lo, hi - lo, &c.h32)
    else:
        cnn_adam_f64(<double *>c.p + lo, <const double *>c.g + lo, <double *>c.m + lo, <double *>c.v + lo,
                     NULL if c.vmax == NULL else <double *>c.vmax + lo, hi - lo, &c.h64)


def adam_step(p, g, m, v, vmax, double beta1, double beta2, double eps, double wd, bint decoupled,
              double step_size, double bias2_sqrt, double decay) -> None:
    """One Adam/AdamW update of the parameter array p (in place) from its gradient g, with the moment
    buffers m, v and (amsgrad; else None) vmax updated in place: cnn_core.optim.Adam's formulas, each
    operation rounded in the arrays' dtype in the order of its NumPy sequence (the scalars cast to that
    dtype first: step_size = lr / (1 - beta1**t), bias2_sqrt = sqrt(1 - beta2**t), decay = 1 - lr * wd),
    so the result equals the ufuncs bit for bit. Arrays: C-contiguous, one float dtype and size. Split over
    a team as sgd_step's: the same bits."""
    cdef Py_buffer views[5]
    cdef int held = 0, kind = 0, k
    cdef bint ams = vmax is not None
    cdef _AdamCall c
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
        c.kind, c.n = kind, views[0].len // kind
        c.row = row_size(&views[0], c.n)
        c.p, c.m, c.v, c.g = views[0].buf, views[1].buf, views[2].buf, views[held - 1].buf
        c.vmax = views[3].buf if ams else NULL
        if kind == 4:
            c.h32 = cnn_adam_params_f32(<float>beta1, <float>(1.0 - beta1), <float>beta2, <float>(1.0 - beta2),
                                        <float>wd, <float>decay, <float>bias2_sqrt, <float>eps, <float>step_size,
                                        mode)
        else:
            c.h64 = cnn_adam_params_f64(beta1, 1.0 - beta1, beta2, 1.0 - beta2, wd, decay, bias2_sqrt, eps,
                                        step_size, mode)
        c.nt = team_size(c.n // CNN_OPTIM_MIN_PER_THREAD)
        with nogil:
            run_team(_adam_share, &c, c.nt)
    finally:
        for k in range(held):
            PyBuffer_Release(&views[k])
