/* The op table: every operation tracejit knows, declared once.
 *
 * X(NAME, numpy, arity, kind, mask, out, flags, spelling)
 *   NAME      enum constant TJ_OP_<NAME>, and the primitive name tj_p_<NAME>_<dtype>
 *   numpy     the NumPy name the tracer dispatches on and the tests compare against
 *             (a ufunc, or a numpy function for where); NULL for internal ops
 *   arity     number of operands
 *   kind      LEAF (a value read from a slot; IOTA: the element index, a virtual leaf
 *             with no slot, counting along dim `axes`, or the C-order linear index
 *             when axes is -1; lowering gives it an access as any leaf, csrc/fuse/lower.c,
 *             and the emitters spell its value from the offset), EW (elementwise), VIEW (movement),
 *             CAST (elementwise dtype conversion, primitives per (from, to)),
 *             RED (reduction over the node's `axes`; primitives in emit/reduce_prims.c),
 *             CAT (operand 1 placed after operand 0 along dim `axes`; fuse.c),
 *             GATH (operand 0 read at the int64 positions operand 1 gives along dim `axes`),
 *             SCAN (running sum or product along dim `axes`; csrc/emit/reduce_prims.c)
 *   mask      loop dtypes the op is defined on (the dtype its operands are cast to):
 *             ALL, NUM (not bool), INTB (bool, ints), INT, FLT, F64 (TJ_M_* in ir/ir.h)
 *   out       SAME: result has the loop dtype; BOOL: result is bool
 *   flags     COMM: commutative (CSE canonicalizes operand order);
 *             COND: first operand is a bool condition, not cast to the loop dtype;
 *             COSTLY: worth storing rather than recomputing (fuse.c)
 *   spelling  the C expression of one element, over operands a, b, c of loop type
 *             tj_t; expanded by csrc/emit/prims.c for every dtype in mask
 *             (TJ_SPECIAL: csrc/emit/prims_special.h; those ops have no NumPy ufunc:
 *             torch code reaches them, csrc/trace/torch.c resolves their dtypes)
 *
 * Adding an elementwise op is one line here; the tracer, the passes, the emitter,
 * the primitives and the tests all read this list.
 */
#define TJ_OPS(X)                                                                   \
    X(INPUT,     NULL,           0, LEAF, ALL,  SAME, 0,    0)                     \
    X(SCALAR,    NULL,           0, LEAF, ALL,  SAME, 0,    0)                     \
    X(CAPTURE,   NULL,           0, LEAF, ALL,  SAME, 0,    0)                     \
    X(CONST,     NULL,           0, LEAF, ALL,  SAME, 0,    0)                     \
    X(IOTA,      NULL,           0, LEAF, ALL,  SAME, 0,    0)                     \
    X(VIEW,      NULL,           1, VIEW, ALL,  SAME, 0,    0)                     \
    X(CAST,      NULL,           1, CAST, ALL,  SAME, 0,    0)                     \
    X(COPY,      NULL,           1, EW,   ALL,  SAME, 0,    (a))                   \
    X(WHERE,     "where",        3, EW,   ALL,  SAME, COND, (a ? b : c))           \
    X(NEG,       "negative",     1, EW,   NUM,  SAME, 0,    (-a))                  \
    X(POS,       "positive",     1, EW,   NUM,  SAME, 0,    (+a))                  \
    X(ABS,       "absolute",     1, EW,   ALL,  SAME, 0,    TJ_ABS(a))             \
    X(INVERT,    "invert",       1, EW,   INTB, SAME, 0,    TJ_INVERT(a))          \
    X(NOT,       "logical_not",  1, EW,   ALL,  BOOL, 0,    (!a))                  \
    X(EXP,       "exp",          1, EW,   FLT,  SAME, COSTLY, TJ_EXP(a))             \
    X(EXPM1,     "expm1",        1, EW,   FLT,  SAME, COSTLY, TJ_VM(expm1, a))     \
    X(LOG,       "log",          1, EW,   FLT,  SAME, COSTLY, TJ_VM(log, a))       \
    X(LOG1P,     "log1p",        1, EW,   FLT,  SAME, COSTLY, TJ_VM(log1p, a))     \
    X(LOG2,      "log2",         1, EW,   FLT,  SAME, COSTLY, TJ_MATH(log2, a))      \
    X(SQRT,      "sqrt",         1, EW,   FLT,  SAME, 0,    TJ_MATH(sqrt, a))      \
    X(SIN,       "sin",          1, EW,   FLT,  SAME, COSTLY, TJ_VM(sin, a))       \
    X(COS,       "cos",          1, EW,   FLT,  SAME, COSTLY, TJ_VM(cos, a))     \
    X(TAN,       "tan",          1, EW,   FLT,  SAME, COSTLY, TJ_MATH(tan, a))     \
    X(TANH,      "tanh",         1, EW,   FLT,  SAME, COSTLY, TJ_VM(tanh, a))    \
    X(ARCTAN,    "arctan",       1, EW,   FLT,  SAME, COSTLY, TJ_MATH(atan, a))    \
    X(ARCSIN,    "arcsin",       1, EW,   FLT,  SAME, COSTLY, TJ_MATH(asin, a))    \
    X(ARCCOS,    "arccos",       1, EW,   FLT,  SAME, COSTLY, TJ_MATH(acos, a))    \
    X(SINH,      "sinh",         1, EW,   FLT,  SAME, COSTLY, TJ_MATH(sinh, a))    \
    X(COSH,      "cosh",         1, EW,   FLT,  SAME, COSTLY, TJ_MATH(cosh, a))    \
    X(ARCSINH,   "arcsinh",      1, EW,   FLT,  SAME, COSTLY, TJ_MATH(asinh, a))   \
    X(ARCCOSH,   "arccosh",      1, EW,   FLT,  SAME, COSTLY, TJ_MATH(acosh, a))   \
    X(ARCTANH,   "arctanh",      1, EW,   FLT,  SAME, COSTLY, TJ_MATH(atanh, a))   \
    X(EXP2,      "exp2",         1, EW,   FLT,  SAME, COSTLY, TJ_MATH(exp2, a))    \
    X(LOG10,     "log10",        1, EW,   FLT,  SAME, COSTLY, TJ_MATH(log10, a))   \
    X(CBRT,      "cbrt",         1, EW,   FLT,  SAME, COSTLY, TJ_MATH(cbrt, a))    \
    X(ISNAN,     "isnan",        1, EW,   ALL,  BOOL, 0,    TJ_GEN1(isnan, a))     \
    X(ISINF,     "isinf",        1, EW,   ALL,  BOOL, 0,    TJ_GEN1(isinf, a))     \
    X(ISFINITE,  "isfinite",     1, EW,   ALL,  BOOL, 0,    TJ_GEN1(isfinite, a))  \
    X(SIGNBIT,   "signbit",      1, EW,   FLT,  BOOL, 0,    (signbit(a) != 0))     \
    X(SQUARE,    "square",       1, EW,   NUM,  SAME, 0,    (a * a))               \
    X(RECIP,     "reciprocal",   1, EW,   NUM,  SAME, 0,    TJ_RECIP(a))           \
    X(SIGN,      "sign",         1, EW,   NUM,  SAME, 0,    TJ_SIGN(a))            \
    X(FLOOR,     "floor",        1, EW,   ALL,  SAME, 0,    TJ_ROUND(floor, a))    \
    X(CEIL,      "ceil",         1, EW,   ALL,  SAME, 0,    TJ_ROUND(ceil, a))     \
    X(ADD,       "add",          2, EW,   ALL,  SAME, COMM, (a + b))               \
    X(SUB,       "subtract",     2, EW,   NUM,  SAME, 0,    (a - b))               \
    X(MUL,       "multiply",     2, EW,   ALL,  SAME, COMM, (a * b))               \
    X(DIV,       "divide",       2, EW,   FLT,  SAME, 0,    (a / b))               \
    X(FLOORDIV,  "floor_divide", 2, EW,   NUM,  SAME, 0,    TJ_GEN(floordiv, a, b)) \
    X(MOD,       "remainder",    2, EW,   NUM,  SAME, 0,    TJ_GEN(mod, a, b))     \
    X(POW,       "power",        2, EW,   NUM,  SAME, COSTLY, TJ_GEN(pow, a, b))     \
    X(EQ,        "equal",        2, EW,   ALL,  BOOL, COMM, (a == b))              \
    X(NE,        "not_equal",    2, EW,   ALL,  BOOL, COMM, (a != b))              \
    X(LT,        "less",         2, EW,   ALL,  BOOL, 0,    (a < b))               \
    X(LE,        "less_equal",   2, EW,   ALL,  BOOL, 0,    (a <= b))              \
    X(GT,        "greater",      2, EW,   ALL,  BOOL, 0,    (a > b))               \
    X(GE,        "greater_equal", 2, EW,  ALL,  BOOL, 0,    (a >= b))              \
    X(AND,       "logical_and",  2, EW,   ALL,  BOOL, COMM, (a && b))              \
    X(OR,        "logical_or",   2, EW,   ALL,  BOOL, COMM, (a || b))              \
    X(XOR,       "logical_xor",  2, EW,   ALL,  BOOL, COMM, ((!a) != (!b)))        \
    X(BAND,      "bitwise_and",  2, EW,   INTB, SAME, COMM, (a & b))               \
    X(BOR,       "bitwise_or",   2, EW,   INTB, SAME, COMM, (a | b))               \
    X(BXOR,      "bitwise_xor",  2, EW,   INTB, SAME, COMM, (a ^ b))               \
    X(MAX,       "maximum",      2, EW,   ALL,  SAME, COMM, TJ_GEN(maximum, a, b)) \
    X(MIN,       "minimum",      2, EW,   ALL,  SAME, COMM, TJ_GEN(minimum, a, b)) \
    X(LOGADDEXP, "logaddexp",    2, EW,   FLT,  SAME, COMM | COSTLY, TJ_GEN(logaddexp, a, b)) \
    X(ARCTAN2,   "arctan2",      2, EW,   FLT,  SAME, COSTLY, TJ_MATH2(atan2, a, b)) \
    X(HYPOT,     "hypot",        2, EW,   FLT,  SAME, 0,    TJ_MATH2(hypot, a, b)) \
    X(COPYSIGN,  "copysign",     2, EW,   FLT,  SAME, 0,    TJ_MATH2(copysign, a, b)) \
    X(FMOD,      "fmod",         2, EW,   NUM,  SAME, 0,    TJ_GEN(fmod, a, b))    \
    X(FPOWER,    "float_power",  2, EW,   F64,  SAME, COSTLY, TJ_VM2(pow, a, b)) \
    X(LSHIFT,    "left_shift",   2, EW,   INT,  SAME, 0,    TJ_GEN(lshift, a, b))  \
    X(RSHIFT,    "right_shift",  2, EW,   INT,  SAME, 0,    TJ_GEN(rshift, a, b)) \
    X(RSUM,      "sum",          1, RED,  ALL,  SAME, 0,    0)                     \
    X(RPROD,     "prod",         1, RED,  ALL,  SAME, 0,    0)                     \
    X(RMAX,      "max",          1, RED,  ALL,  SAME, 0,    0)                     \
    X(RMIN,      "min",          1, RED,  ALL,  SAME, 0,    0)                     \
    X(RARGMAX,   "argmax",       1, RED,  ALL,  SAME, 0,    0)                     \
    X(RARGMIN,   "argmin",       1, RED,  ALL,  SAME, 0,    0)                     \
    X(CONCAT,    NULL,           2, CAT,  ALL,  SAME, 0,    0)                     \
    X(GATHER,    NULL,           2, GATH, ALL,  SAME, 0,    0)                     \
    X(CUMSUM,    "cumsum",       1, SCAN, ALL,  SAME, 0,    0)                     \
    X(CUMPROD,   "cumprod",      1, SCAN, ALL,  SAME, 0,    0)                     \
    X(ERF,       NULL,           1, EW,   FLT,  SAME, COSTLY, TJ_VM(erf, a))        \
    X(ERFC,      NULL,           1, EW,   FLT,  SAME, COSTLY, TJ_SPECIAL(erfc, a))  \
    X(LGAMMA,    NULL,           1, EW,   FLT,  SAME, COSTLY, TJ_SPECIAL(lgamma, a)) \
    X(DIGAMMA,   NULL,           1, EW,   FLT,  SAME, COSTLY, TJ_SPECIAL(digamma, a))
