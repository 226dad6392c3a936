# The C activation loops of src_c/activations.c: declared once here, cimported by every module that links them
# (_activations, _recurrent).
cdef extern from "activations.h" nogil:
    ctypedef enum cnn_act_t:
        CNN_SIGMOID, CNN_TANH, CNN_RELU, CNN_ELU
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    void cnn_act_init(cnn_simd_level_fn simd_level)
    void cnn_act_forward_f32(cnn_act_t op, const float *z, float *a, Py_ssize_t n, float alpha)
    void cnn_act_forward_f64(cnn_act_t op, const double *z, double *a, Py_ssize_t n, double alpha)
    void cnn_act_backward_f32(cnn_act_t op, const float *dy, const float *a, float *out, Py_ssize_t n,
                              float alpha)
    void cnn_act_backward_f64(cnn_act_t op, const double *dy, const double *a, double *out, Py_ssize_t n,
                              double alpha)
