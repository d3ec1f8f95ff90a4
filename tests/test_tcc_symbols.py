"""TinyCC compiles register only the primitives a source names (csrc/backend/tcc.c
add_symbols: one scan of its identifiers against the sorted table of every symbol),
plus memcpy/memset/memmove, which TinyCC calls for struct copies no source spells;
a loaded program's own symbols (malloc, ...) only for programs. A name that is a
prefix or an extension of a known one is not it."""
import numpy as np
import pytest

import tracejit as tj
from tracejit import _C


def test_named_primitives_and_unspelled_memcpy_link():
    _C._compile_source("void tj_gemm_f64(); void f(void) { tj_gemm_f64(); }")
    # 64 doubles copied by assignment: TinyCC emits a memcpy call
    _C._compile_source("struct S { double a[64]; }; void f(struct S *a, struct S *b) { *a = *b; }")
    # names in comments, strings and after digits are harmless
    _C._compile_source('/* tj_gemm_f32 */ const char *s = "tj_p_ADD_f64"; double x = 1e5;')


@pytest.mark.parametrize("name", ["tj_gemm_f6", "tj_gemm_f64x", "malloc"])
def test_unknown_or_program_only_names_stay_undefined(name):
    with pytest.raises(tj.CompileError, match=f"undefined symbol '{name}'"):
        _C._compile_source(f"void *{name}(); void *f(void) {{ return {name}(); }}")


def test_kernels_of_many_ops_and_dtypes_still_link():
    x32 = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    i64 = np.arange(12).reshape(3, 4)

    def f(a, b):
        return (np.tanh(a) @ a.T).sum(0), np.cumsum(b, 1) % 5, np.maximum(a, b).astype(np.float64)
    for got, want in zip(tj.compile(f)(x32, i64), f(x32, i64)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
