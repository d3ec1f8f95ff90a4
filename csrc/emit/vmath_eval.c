/* tracejit._C._vmath(name, out, x[, y]): runs one csrc/emit/vmath.h function over
 * contiguous float32 or float64 buffers, in the same kind of vectorized loop as the
 * primitives (testing hook: tests/test_accuracy.py measures sigmoid, softplus and
 * erf, which no NumPy ufunc reaches, through it). */
#include "tracejit.h"
#include <math.h>

#pragma GCC optimize("O3", "no-trapping-math", "no-thread-jumps")   /* before vmath.h: see its header */
#include "vmath.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TJ_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TJ_CLONES
#endif

#define TJ_VM_FUNCS(X) X(exp) X(expm1) X(log) X(log1p) X(tanh) X(sigmoid) X(softplus) \
    X(erf) X(sin) X(cos)

#define TJ_VM_LOOPS(fn)                                                               \
    TJ_CLONES static void vm_##fn##_f32(float *restrict o, const float *restrict a,   \
                                        const float *restrict b, int64_t n) {         \
        for (int64_t i = 0; i < n; i++) o[i] = tj_##fn##f(a[i]);                      \
    }                                                                                 \
    TJ_CLONES static void vm_##fn##_f64(double *restrict o, const double *restrict a, \
                                        const double *restrict b, int64_t n) {        \
        for (int64_t i = 0; i < n; i++) o[i] = tj_##fn(a[i]);                         \
    }
TJ_VM_FUNCS(TJ_VM_LOOPS)

TJ_CLONES static void vm_pow_f32(float *restrict o, const float *restrict a,
                                 const float *restrict b, int64_t n) {
    for (int64_t i = 0; i < n; i++) o[i] = tj_powf(a[i], b[i]);
}
TJ_CLONES static void vm_pow_f64(double *restrict o, const double *restrict a,
                                 const double *restrict b, int64_t n) {
    for (int64_t i = 0; i < n; i++) o[i] = tj_pow(a[i], b[i]);
}

typedef struct {
    const char *name;
    int arity;
    void (*f32)(float *restrict, const float *restrict, const float *restrict, int64_t);
    void (*f64)(double *restrict, const double *restrict, const double *restrict, int64_t);
} vm_entry;

#define TJ_VM_ENTRY(fn) {#fn, 1, vm_##fn##_f32, vm_##fn##_f64},
static const vm_entry vm_table[] = {TJ_VM_FUNCS(TJ_VM_ENTRY) {"pow", 2, vm_pow_f32, vm_pow_f64}};

PyObject *tj_py_vmath(PyObject *self, PyObject *args) {
    const char *name;
    PyObject *objs[3] = {NULL, NULL, NULL};
    if (!PyArg_ParseTuple(args, "sOO|O:_vmath", &name, &objs[0], &objs[1], &objs[2])) return NULL;
    const vm_entry *e = NULL;
    for (size_t i = 0; i < sizeof vm_table / sizeof vm_table[0]; i++)
        if (!strcmp(vm_table[i].name, name)) e = &vm_table[i];
    if (!e) return PyErr_Format(PyExc_ValueError, "_vmath: unknown function '%s'", name);
    int nobj = objs[2] ? 3 : 2;
    if (nobj != e->arity + 1)
        return PyErr_Format(PyExc_TypeError, "_vmath: '%s' takes %d input(s)", name, e->arity);
    Py_buffer buf[3];
    int got = 0;
    PyObject *res = NULL;
    for (; got < nobj; got++)
        if (PyObject_GetBuffer(objs[got], &buf[got],
                               (got ? PyBUF_C_CONTIGUOUS : PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) |
                                   PyBUF_FORMAT) < 0)
            goto done;
    for (int i = 0; i < nobj; i++) {
        const char *f = buf[i].format;
        int isf = f && (!strcmp(f, "f") || !strcmp(f, "d")) && buf[i].itemsize == buf[0].itemsize;
        if (!isf || buf[i].len != buf[0].len) {
            PyErr_SetString(PyExc_TypeError,
                             "_vmath: buffers must be contiguous float32 or float64 of one dtype and length");
            goto done;
        }
    }
    int64_t n = buf[0].len / buf[0].itemsize;
    const void *b = nobj == 3 ? buf[2].buf : NULL;
    if (buf[0].itemsize == 4) e->f32(buf[0].buf, buf[1].buf, b, n);
    else e->f64(buf[0].buf, buf[1].buf, b, n);
    if (!strcmp(name, "sin") || !strcmp(name, "cos")) {
        int kind = name[0] == 's' ? 1 : 2;
        if (buf[0].itemsize == 4) tj_trig_fixupf(buf[0].buf, buf[1].buf, n, kind);
        else tj_trig_fixup(buf[0].buf, buf[1].buf, n, kind);
    }
    res = Py_NewRef(Py_None);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&buf[i]);
    return res;
}
