/* The op table: every operation tracejit knows, declared once. Every per-op property
 * a pass, an emitter, the tracer or Python needs is a column here, read through
 * tj_ops[] (csrc/ir/ir.h) or a function of csrc/ir/graph.c derived from the columns.
 *
 * X(NAME, numpy, torch, arity, kind, mask, out, flags, fold, spelling)
 *   NAME      enum constant TJ_OP_<NAME>, and the primitive name tj_p_<NAME>_<dtype>
 *   numpy     the NumPy name the tracer dispatches on and the tests compare against
 *             (a ufunc, or a numpy function for where and the reductions); NULL for
 *             internal ops
 *   torch     elementwise ops: the torch names that compute the op, space-separated:
 *             torch.X and Tensor.X (and Tensor.X_ unless _torch._NO_INPLACE says
 *             torch has none), or special.X for torch.special.X only; Python reads
 *             them through _C._op_table() (python/tracejit/_torch_ops.py); NULL: none
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
 *             ALL, NUM (not bool), INTB (bool, ints), INT, I64, FLT, F64 (TJ_M_* in ir/ir.h);
 *             the loop dtype of a node is tj_node_loop_dtype's (csrc/ir/graph.c)
 *   out       SAME: result has the loop dtype; BOOL: result is bool; F32, F64: that float
 *             (the random draws RUNIF and RNORM: int64 operands, the call's key and the
 *             element's counter, a float result; csrc/emit/prims_random.h. A draw is a
 *             pure function of its operands, so no flag: the key is read at every call,
 *             nothing folds it, and two draws of one call never share a counter).
 *             The rejection samplers RGAMMA, RPOIS (parameter, seed) and RBINOM (count,
 *             prob, seed) have float parameters of the loop dtype (their first
 *             operands, so tj_node_loop_dtype is theirs) and an int64 last operand,
 *             the element's seed (prims.c's TJ_LAYOUT_<NAME> says so); no fill
 *   flags     COMM: commutative (CSE canonicalizes operand order);
 *             COND: first operand is a bool condition, not cast to the loop dtype;
 *             COSTLY: the cost class: worth storing rather than recomputing (fuse.c),
 *               not folded for floats (fold.c), not fused into a reduction's loop
 *               (emit_fused.c);
 *             EFFECT: not a pure function of its operands, so it must run exactly
 *               once per element and call: never folded (fold.c), merged (cse.c),
 *               rewritten (simplify.c), hoisted out of a loop or reordered (the
 *               emitters), and never recomputed: fuse.c may recompute a pure value
 *               in each group that reads it, but computes an EFFECT node in one
 *               group and stores it for the others. tj_op_pure() reads it. No op has it
 *               yet: the random draws are pure functions of key and counter
 *               (recomputing one gives the same bits), so they carry no flag;
 *             INDEX: needs the element's index (argmax/argmin: the index they return);
 *             DRAW: a counter-based draw (operands key and counter): where lowering
 *               proves a loop's counters consecutive (tj_loop.draws), the tier fills a
 *               tile of them a Philox block at a time (tj_fill_<NAME>,
 *               prims_random.h), the same bits as the element function's
 *   fold      RED and SCAN ops: FOLD(combiner, identity, accumulation): the
 *             elementwise op that combines two partial results (ADD, MUL, MAX, MIN;
 *             argmax/argmin compare with MAX/MIN, keeping the first index), the
 *             identity it starts from (ZERO, ONE; LOWEST: the dtype's least value or
 *             -inf, HIGHEST: its greatest or inf, which NumPy does not count as an
 *             identity: an empty max is an error, trace/reduce.c), and the
 *             accumulation dtype (WIDE: int64 or float64, tj_red_acc_dtype; SAME: the
 *             operand's); NONE for other ops
 *   spelling  the C expression of one element, over operands a, b, c of loop type
 *             tj_t; expanded by csrc/emit/prims.c for every dtype in mask
 *             (TJ_SPECIAL: csrc/emit/prims_special.h; those ops have no NumPy ufunc:
 *             torch code reaches them, csrc/trace/torch.c resolves their dtypes)
 *
 * Adding an elementwise op is one line here; the tracer, the passes, the emitter,
 * the primitives, torch's vocabulary and the tests all read this list.
 */
/* The dtype table, declared once: X(args..., C type of the primitives, suffix, class,
 * NAME) for each dtype (callers pass at least one leading argument; ir.h's tj_dtype
 * enum is TJ_<NAME> in this order). The order is bool, the signed then the unsigned
 * integers by width, the floats, so `dt >= TJ_F32` reads "is a float". `class` is the
 * set the op table's masks are made of (csrc/emit/prims.c instantiates a primitive for
 * each dtype of a mask): b bool, s int8/int16/int32, l int64, u the unsigned integers,
 * f float32, d float64, h float16, g bfloat16. float16 and bfloat16 (after float64, so
 * `dt >= TJ_F32` still reads "is a float") are storage only: in no op's mask, held as
 * uint16_t bits, touched by casts, loads and stores; the tracer computes their ops in
 * float32 and rounds. Complex numbers are no dtype here: pairs of real arrays
 * (python/tracejit/_complex.py). */
#define TJ_DTYPES(X, ...)                       \
    X(__VA_ARGS__, bool,     b,    b, BOOL)     \
    X(__VA_ARGS__, int8_t,   i8,   s, I8)       \
    X(__VA_ARGS__, int16_t,  i16,  s, I16)      \
    X(__VA_ARGS__, int32_t,  i32,  s, I32)      \
    X(__VA_ARGS__, int64_t,  i64,  l, I64)      \
    X(__VA_ARGS__, uint8_t,  u8,   u, U8)       \
    X(__VA_ARGS__, uint16_t, u16,  u, U16)      \
    X(__VA_ARGS__, uint32_t, u32,  u, U32)      \
    X(__VA_ARGS__, uint64_t, u64,  u, U64)      \
    X(__VA_ARGS__, float,    f32,  f, F32)      \
    X(__VA_ARGS__, double,   f64,  d, F64)      \
    X(__VA_ARGS__, uint16_t, f16,  h, F16)      \
    X(__VA_ARGS__, uint16_t, bf16, g, BF16)

#define TJ_OPS(X)                                                                   \
    X(INPUT,    NULL,           NULL,                    0, LEAF, ALL,  SAME, 0,            NONE,                   0) \
    X(SCALAR,   NULL,           NULL,                    0, LEAF, ALL,  SAME, 0,            NONE,                   0) \
    X(CAPTURE,  NULL,           NULL,                    0, LEAF, ALL,  SAME, 0,            NONE,                   0) \
    X(CONST,    NULL,           NULL,                    0, LEAF, ALL,  SAME, 0,            NONE,                   0) \
    X(IOTA,     NULL,           NULL,                    0, LEAF, ALL,  SAME, 0,            NONE,                   0) \
    X(VIEW,     NULL,           NULL,                    1, VIEW, ALL,  SAME, 0,            NONE,                   0) \
    X(CAST,     NULL,           NULL,                    1, CAST, ALL,  SAME, 0,            NONE,                   0) \
    X(COPY,     NULL,           NULL,                    1, EW,  ALL,  SAME, 0,            NONE,                   (a)) \
    X(WHERE,    "where",        "where",                 3, EW,  ALL,  SAME, COND,         NONE,                   (a ? b : c)) \
    X(NEG,      "negative",     "neg negative",          1, EW,  NUM,  SAME, 0,            NONE,                   (-a)) \
    X(POS,      "positive",     NULL,                    1, EW,  NUM,  SAME, 0,            NONE,                   (+a)) \
    X(ABS,      "absolute",     "abs absolute",          1, EW,  ALL,  SAME, 0,            NONE,                   TJ_ABS(a)) \
    X(INVERT,   "invert",       "bitwise_not",           1, EW,  INTB, SAME, 0,            NONE,                   TJ_INVERT(a)) \
    X(NOT,      "logical_not",  "logical_not",           1, EW,  ALL,  BOOL, 0,            NONE,                   (!a)) \
    X(EXP,      "exp",          "exp",                   1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_EXP(a)) \
    X(EXPM1,    "expm1",        "expm1",                 1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_VM(expm1, a)) \
    X(LOG,      "log",          "log",                   1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_VM(log, a)) \
    X(LOG1P,    "log1p",        "log1p",                 1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_VM(log1p, a)) \
    X(LOG2,     "log2",         "log2",                  1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(log2, a)) \
    X(SQRT,     "sqrt",         "sqrt",                  1, EW,  FLT,  SAME, 0,            NONE,                   TJ_MATH(sqrt, a)) \
    X(SIN,      "sin",          "sin",                   1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_VM(sin, a)) \
    X(COS,      "cos",          "cos",                   1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_VM(cos, a)) \
    X(TAN,      "tan",          "tan",                   1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(tan, a)) \
    X(TANH,     "tanh",         "tanh",                  1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_VM(tanh, a)) \
    X(ARCTAN,   "arctan",       "atan arctan",           1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(atan, a)) \
    X(ARCSIN,   "arcsin",       "asin arcsin",           1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(asin, a)) \
    X(ARCCOS,   "arccos",       "acos arccos",           1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(acos, a)) \
    X(SINH,     "sinh",         "sinh",                  1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(sinh, a)) \
    X(COSH,     "cosh",         "cosh",                  1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(cosh, a)) \
    X(ARCSINH,  "arcsinh",      "asinh arcsinh",         1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(asinh, a)) \
    X(ARCCOSH,  "arccosh",      "acosh arccosh",         1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(acosh, a)) \
    X(ARCTANH,  "arctanh",      "atanh arctanh",         1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(atanh, a)) \
    X(EXP2,     "exp2",         "exp2",                  1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(exp2, a)) \
    X(LOG10,    "log10",        "log10",                 1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(log10, a)) \
    X(CBRT,     "cbrt",         NULL,                    1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH(cbrt, a)) \
    X(ISNAN,    "isnan",        "isnan",                 1, EW,  ALL,  BOOL, 0,            NONE,                   TJ_GEN1(isnan, a)) \
    X(ISINF,    "isinf",        "isinf",                 1, EW,  ALL,  BOOL, 0,            NONE,                   TJ_GEN1(isinf, a)) \
    X(ISFINITE, "isfinite",     "isfinite",              1, EW,  ALL,  BOOL, 0,            NONE,                   TJ_GEN1(isfinite, a)) \
    X(SIGNBIT,  "signbit",      "signbit",               1, EW,  FLT,  BOOL, 0,            NONE,                   (signbit(a) != 0)) \
    X(SQUARE,   "square",       "square",                1, EW,  NUM,  SAME, 0,            NONE,                   (a * a)) \
    X(RECIP,    "reciprocal",   "reciprocal",            1, EW,  NUM,  SAME, 0,            NONE,                   TJ_RECIP(a)) \
    X(SIGN,     "sign",         "sign sgn",              1, EW,  NUM,  SAME, 0,            NONE,                   TJ_SIGN(a)) \
    X(FLOOR,    "floor",        "floor",                 1, EW,  ALL,  SAME, 0,            NONE,                   TJ_ROUND(floor, a)) \
    X(CEIL,     "ceil",         "ceil",                  1, EW,  ALL,  SAME, 0,            NONE,                   TJ_ROUND(ceil, a)) \
    X(ADD,      "add",          "add",                   2, EW,  ALL,  SAME, COMM,         NONE,                   (a + b)) \
    X(SUB,      "subtract",     "sub subtract",          2, EW,  NUM,  SAME, 0,            NONE,                   (a - b)) \
    X(MUL,      "multiply",     "mul multiply",          2, EW,  ALL,  SAME, COMM,         NONE,                   (a * b)) \
    X(DIV,      "divide",       "div divide true_divide", 2, EW,  FLT,  SAME, 0,            NONE,                   (a / b)) \
    X(FLOORDIV, "floor_divide", "floor_divide",          2, EW,  NUM,  SAME, 0,            NONE,                   TJ_GEN(floordiv, a, b)) \
    X(MOD,      "remainder",    "remainder",             2, EW,  NUM,  SAME, 0,            NONE,                   TJ_GEN(mod, a, b)) \
    X(POW,      "power",        "pow",                   2, EW,  NUM,  SAME, COSTLY,       NONE,                   TJ_GEN(pow, a, b)) \
    X(EQ,       "equal",        "eq",                    2, EW,  ALL,  BOOL, COMM,         NONE,                   (a == b)) \
    X(NE,       "not_equal",    "ne not_equal",          2, EW,  ALL,  BOOL, COMM,         NONE,                   (a != b)) \
    X(LT,       "less",         "lt less",               2, EW,  ALL,  BOOL, 0,            NONE,                   (a < b)) \
    X(LE,       "less_equal",   "le less_equal",         2, EW,  ALL,  BOOL, 0,            NONE,                   (a <= b)) \
    X(GT,       "greater",      "gt greater",            2, EW,  ALL,  BOOL, 0,            NONE,                   (a > b)) \
    X(GE,       "greater_equal", "ge greater_equal",      2, EW,  ALL,  BOOL, 0,            NONE,                   (a >= b)) \
    X(AND,      "logical_and",  "logical_and",           2, EW,  ALL,  BOOL, COMM,         NONE,                   (a && b)) \
    X(OR,       "logical_or",   "logical_or",            2, EW,  ALL,  BOOL, COMM,         NONE,                   (a || b)) \
    X(XOR,      "logical_xor",  "logical_xor",           2, EW,  ALL,  BOOL, COMM,         NONE,                   ((!a) != (!b))) \
    X(BAND,     "bitwise_and",  "bitwise_and",           2, EW,  INTB, SAME, COMM,         NONE,                   (a & b)) \
    X(BOR,      "bitwise_or",   "bitwise_or",            2, EW,  INTB, SAME, COMM,         NONE,                   (a | b)) \
    X(BXOR,     "bitwise_xor",  "bitwise_xor",           2, EW,  INTB, SAME, COMM,         NONE,                   (a ^ b)) \
    X(MAX,      "maximum",      "maximum",               2, EW,  ALL,  SAME, COMM,         NONE,                   TJ_GEN(maximum, a, b)) \
    X(MIN,      "minimum",      "minimum",               2, EW,  ALL,  SAME, COMM,         NONE,                   TJ_GEN(minimum, a, b)) \
    X(LOGADDEXP, "logaddexp",    "logaddexp",             2, EW,  FLT,  SAME, COMM | COSTLY, NONE,                   TJ_GEN(logaddexp, a, b)) \
    X(ARCTAN2,  "arctan2",      "atan2 arctan2",         2, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_MATH2(atan2, a, b)) \
    X(HYPOT,    "hypot",        "hypot",                 2, EW,  FLT,  SAME, 0,            NONE,                   TJ_MATH2(hypot, a, b)) \
    X(COPYSIGN, "copysign",     "copysign",              2, EW,  FLT,  SAME, 0,            NONE,                   TJ_MATH2(copysign, a, b)) \
    X(FMOD,     "fmod",         "fmod",                  2, EW,  NUM,  SAME, 0,            NONE,                   TJ_GEN(fmod, a, b)) \
    X(FPOWER,   "float_power",  "float_power",           2, EW,  F64,  SAME, COSTLY,       NONE,                   TJ_VM2(pow, a, b)) \
    X(LSHIFT,   "left_shift",   NULL,                    2, EW,  INT,  SAME, 0,            NONE,                   TJ_GEN(lshift, a, b)) \
    X(RSHIFT,   "right_shift",  NULL,                    2, EW,  INT,  SAME, 0,            NONE,                   TJ_GEN(rshift, a, b)) \
    X(RSUM,     "sum",          NULL,                    1, RED, ALL,  SAME, 0,            FOLD(ADD, ZERO, WIDE),  0) \
    X(RPROD,    "prod",         NULL,                    1, RED, ALL,  SAME, 0,            FOLD(MUL, ONE, WIDE),   0) \
    X(RMAX,     "max",          NULL,                    1, RED, ALL,  SAME, 0,            FOLD(MAX, LOWEST, SAME), 0) \
    X(RMIN,     "min",          NULL,                    1, RED, ALL,  SAME, 0,            FOLD(MIN, HIGHEST, SAME), 0) \
    X(RARGMAX,  "argmax",       NULL,                    1, RED, ALL,  SAME, INDEX,        FOLD(MAX, LOWEST, SAME), 0) \
    X(RARGMIN,  "argmin",       NULL,                    1, RED, ALL,  SAME, INDEX,        FOLD(MIN, HIGHEST, SAME), 0) \
    X(CONCAT,   NULL,           NULL,                    2, CAT, ALL,  SAME, 0,            NONE,                   0) \
    X(GATHER,   NULL,           NULL,                    2, GATH, ALL,  SAME, 0,            NONE,                   0) \
    X(CUMSUM,   "cumsum",       NULL,                    1, SCAN, ALL,  SAME, 0,            FOLD(ADD, ZERO, SAME),  0) \
    X(CUMPROD,  "cumprod",      NULL,                    1, SCAN, ALL,  SAME, 0,            FOLD(MUL, ONE, SAME),   0) \
    X(ERF,      NULL,           "erf",                   1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_VM(erf, a)) \
    X(ERFC,     NULL,           "erfc",                  1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_SPECIAL(erfc, a)) \
    X(LGAMMA,   NULL,           "lgamma special.gammaln", 1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_SPECIAL(lgamma, a)) \
    X(DIGAMMA,  NULL,           "digamma special.psi",   1, EW,  FLT,  SAME, COSTLY,       NONE,                   TJ_SPECIAL(digamma, a)) \
    X(RUNIF32,  NULL,           NULL,                    2, EW,  I64,  F32,  DRAW,         NONE,                   tj_runif_f32(a, b)) \
    X(RUNIF64,  NULL,           NULL,                    2, EW,  I64,  F64,  DRAW,         NONE,                   tj_runif_f64(a, b)) \
    X(RNORM32,  NULL,           NULL,                    2, EW,  I64,  F32,  COSTLY|DRAW,  NONE,                   tj_rnorm_f32(a, b)) \
    X(RNORM64,  NULL,           NULL,                    2, EW,  I64,  F64,  COSTLY|DRAW,  NONE,                   tj_rnorm_f64(a, b)) \
    X(RGAMMA,   NULL,           NULL,                    2, EW,  FLT,  SAME, COSTLY,       NONE,                   tj_rgamma((double)a, b)) \
    X(RPOIS,    NULL,           NULL,                    2, EW,  FLT,  SAME, COSTLY,       NONE,                   tj_rpois((double)a, b)) \
    X(RBINOM,   NULL,           NULL,                    3, EW,  FLT,  SAME, COSTLY,       NONE,                   tj_rbinom((double)a, (double)b, c)) \
    X(GAMMAGRAD, NULL,          NULL,                    2, EW,  FLT,  SAME, COSTLY,       NONE,                   tj_gamma_grad_d((double)a, (double)b))
