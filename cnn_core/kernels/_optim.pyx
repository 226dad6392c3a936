# distutils: extra_compile_args = -ffp-contract=off
# distutils: sources = src_c/optim.c
# distutils: depends = src_c/optim.h src_c/cpu.h src_c/threads.h src_c/thresholds.h
"""Compiled optimizer kernels for the training loop: SGD's and Adam's update of a parameter group, every
parameter in one pass, all of them in one call (cnn_core.optim.SGD and Adam call them on arrays they have
checked).

Arrays are taken through the buffer protocol (any C-contiguous float32/float64 array, any number of
dimensions), which costs a fraction of a microsecond per array: a LeNet-5 step has ten parameters, and
NumPy's per-ufunc overhead (a microsecond or more per call, four to five calls per parameter) was most of
the optimizer's time at batch 64; then one call per parameter still cost ~2 us of Python each (LeNet-5's
whole step in fit, line timing: 74-75 us one call per parameter, 60-61 us one call). The loops are src_c/optim.c's, one per instruction-set level (the
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
    float cnn_adam_v_floor_f32(float eps, float bias2_sqrt)
    double cnn_adam_v_floor_f64(double eps, double bias2_sqrt)


cnn_optim_init(simd_level)


# One parameter of a step call: its arrays (a[0] the parameter, a[1] its gradient, then the optimizer's state:
# SGD's momentum buffer; Adam's m, v and v_max; NULL where absent), its size and row length (threads.h's
# cnn_array_share), the team that splits it (the first nt threads of the call's team; the others skip it),
# and what differs between parameters: SGD's momentum mode (optim.h), Adam's bias-corrected scalars.
ctypedef struct _Param:
    void *a[5]
    Py_ssize_t n, row
    int nt, mode
    cnn_adam_params_f32 h32
    cnn_adam_params_f64 h64


# The update of elements [lo, hi) of one parameter (SGD's or Adam's).
ctypedef void (*_Update)(const _StepCall *c, const _Param *a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil


# One step call for its team (run_team): thread t takes share t of every parameter split over more than t
# threads, the shares one call per parameter would take, so a thread touches the rows of each weight it wrote
# in the backward pass (threads.h's row shares). Elementwise: any split gives the same bits.
ctypedef struct _StepCall:
    _Param *params
    Py_ssize_t count
    int kind, use_wd, nesterov
    double lr, mu, damp1, wd
    _Update update


cdef void _step_share(void *arg, int t) noexcept nogil:
    cdef _StepCall *c = <_StepCall *>arg
    cdef const _Param *a
    cdef Py_ssize_t i
    for i in range(c.count):
        a = &c.params[i]
        if t < a.nt:
            c.update(c, a, cnn_array_share(a.n, a.row, a.nt, t), cnn_array_share(a.n, a.row, a.nt, t + 1))


cdef bint _same_shape(const Py_buffer *a, const Py_buffer *b) noexcept:
    cdef int d
    if a.ndim != b.ndim:
        return False
    for d in range(a.ndim):
        if a.shape[d] != b.shape[d]:
            return False
    return True


cdef class _Params:
    """The buffers of a step call's arrays, column j of `columns` (a sequence per array role, at most 5 roles,
    None for a role absent from this call) holding parameter i's array of that role at [i]; held while the
    object lives. Every array C-contiguous, of one float dtype for the whole call, of its parameter's shape
    (else TypeError or ValueError, before anything is written); role 1 (the gradient) read-only, the others
    written."""
    cdef Py_buffer *views
    cdef Py_ssize_t held
    cdef _Param *params
    cdef Py_ssize_t count
    cdef int kind, nt

    def __cinit__(self, str what, tuple columns):
        cdef Py_ssize_t i, first
        cdef int j, kind
        self.count = len(columns[0])
        if len(columns) > 5:
            raise ValueError(f"{what}: expected at most 5 arrays per parameter, got {len(columns)}")
        for col in columns:
            if col is not None and len(col) != self.count:
                raise ValueError(f"{what}: expected one array per parameter in every argument")
        self.views = <Py_buffer *>PyMem_Malloc(max(1, len(columns) * self.count) * sizeof(Py_buffer))
        self.params = <_Param *>PyMem_Malloc(max(1, self.count) * sizeof(_Param))
        if self.views == NULL or self.params == NULL:
            raise MemoryError()
        self.kind, self.nt = 0, 1
        for i in range(self.count):
            first = self.held
            for j in range(5):
                self.params[i].a[j] = NULL
            for j, col in enumerate(columns):
                if col is None:
                    continue
                PyObject_GetBuffer(col[i], &self.views[self.held],
                                   PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (0 if j == 1 else PyBUF_WRITABLE))
                self.held += 1
                kind = float_kind(&self.views[self.held - 1])
                if i == 0 and j == 0:
                    self.kind = kind
                if kind == 0 or kind != self.kind or not _same_shape(&self.views[self.held - 1], &self.views[first]):
                    raise TypeError(f"{what}: expected every array of a parameter of its shape, and one float "
                                    f"dtype for every parameter")
                self.params[i].a[j] = self.views[self.held - 1].buf
            self.params[i].n = self.views[first].len // self.kind
            self.params[i].row = row_size(&self.views[first], self.params[i].n)
            self.params[i].nt = team_size(self.params[i].n // CNN_OPTIM_MIN_PER_THREAD)
            self.nt = max(self.nt, self.params[i].nt)

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.held):
            PyBuffer_Release(&self.views[i])
        PyMem_Free(self.views)
        PyMem_Free(self.params)

    cdef void run(self, _Update update, _StepCall *c) noexcept:
        """update(c, parameter, lo, hi) over every parameter's shares, on the team."""
        c.params, c.count, c.kind, c.update = self.params, self.count, self.kind, update
        if self.count:
            with nogil:
                run_team(_step_share, c, self.nt)


cdef void _sgd_update(const _StepCall *c, const _Param *a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    if c.kind == 4:
        cnn_sgd_f32(<float *>a.a[0] + lo, <const float *>a.a[1] + lo, NULL if a.a[2] == NULL else <float *>a.a[2] + lo,
                    hi - lo, <float>c.lr, <float>c.mu, <float>c.damp1, <float>c.wd, c.use_wd, a.mode, c.nesterov)
    else:
        cnn_sgd_f64(<double *>a.a[0] + lo, <const double *>a.a[1] + lo,
                    NULL if a.a[2] == NULL else <double *>a.a[2] + lo, hi - lo, c.lr, c.mu, c.damp1, c.wd, c.use_wd,
                    a.mode, c.nesterov)


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
    cdef bint has_buf = momentum != 0.0
    cdef _Params params = _Params("sgd_step", (ps, gs, bufs if has_buf else None))
    cdef _StepCall c
    cdef Py_ssize_t i
    if has_buf and len(firsts) != params.count:
        raise ValueError("sgd_step: expected one flag per parameter in firsts")
    for i in range(params.count):
        params.params[i].mode = 0 if not has_buf else (1 if firsts[i] else (2 if dampening == 0.0 else 3))
    c.lr, c.mu, c.damp1, c.wd = lr, momentum, 1.0 - dampening, weight_decay
    c.use_wd, c.nesterov = weight_decay != 0.0, nesterov
    params.run(_sgd_update, &c)


cdef void _adam_update(const _StepCall *c, const _Param *a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    if c.kind == 4:
        cnn_adam_f32(<float *>a.a[0] + lo, <const float *>a.a[1] + lo, <float *>a.a[2] + lo, <float *>a.a[3] + lo,
                     NULL if a.a[4] == NULL else <float *>a.a[4] + lo, hi - lo, &a.h32)
    else:
        cnn_adam_f64(<double *>a.a[0] + lo, <const double *>a.a[1] + lo, <double *>a.a[2] + lo,
                     <double *>a.a[3] + lo, NULL if a.a[4] == NULL else <double *>a.a[4] + lo, hi - lo, &a.h64)


def adam_step(ps, gs, ms, vs, vmaxs, double beta1, double beta2, double eps, double wd, bint decoupled,
              step_sizes, bias2_sqrts, double decay) -> None:
    """One Adam/AdamW update of every parameter array ps[i] (in place) from its gradient gs[i], with its
    moment buffers ms[i], vs[i] and (amsgrad; else vmaxs is None) vmaxs[i] updated in place:
    cnn_core.optim.Adam's formulas, each operation rounded in the arrays' dtype in the order of its NumPy
    sequence (the scalars cast to that dtype first: step_sizes[i] = lr / (1 - beta1**t_i), bias2_sqrts[i] =
    sqrt(1 - beta2**t_i) with parameter i's step count t_i, decay = 1 - lr * wd), so the result equals the
    ufuncs bit for bit. Arrays as sgd_step's (else TypeError or ValueError before anything is written), split
    over a team as sgd_step's: the same bits."""
    cdef _Params params = _Params("adam_step", (ps, gs, ms, vs, vmaxs))
    cdef _StepCall c
    cdef Py_ssize_t i
    cdef int mode = 0 if wd == 0.0 else (2 if decoupled else 1)
    cdef double step_size, bias2_sqrt
    if len(step_sizes) != params.count or len(bias2_sqrts) != params.count:
        raise ValueError("adam_step: expected one step size and one bias correction per parameter")
    for i in range(params.count):
        step_size, bias2_sqrt = step_sizes[i], bias2_sqrts[i]
        if params.kind == 4:
            params.params[i].h32 = cnn_adam_params_f32(<float>beta1, <float>(1.0 - beta1), <float>beta2,
                                                       <float>(1.0 - beta2), <float>wd, <float>decay,
                                                       <float>bias2_sqrt, <float>eps, <float>step_size, mode)
        else:
            params.params[i].h64 = cnn_adam_params_f64(beta1, 1.0 - beta1, beta2, 1.0 - beta2, wd, decay,
                                                       bias2_sqrt, eps, step_size, mode)
    params.run(_adam_update, &c)


def adam_v_floor(bint single, double eps, double bias2_sqrt) -> float:
    """The value below which adam_step stores v (and v_max) as zero, in float32 (single) or float64
    arithmetic: the smallest normal number, or 0 where v keeps its subnormals (src_c/optim.c says why). For
    the ufunc fallback of cnn_core.optim.Adam, which applies the same floors."""
    if single:
        return cnn_adam_v_floor_f32(<float>eps, <float>bias2_sqrt)
    return cnn_adam_v_floor_f64(eps, bias2_sqrt)
