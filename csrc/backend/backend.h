/* backend.h: the compilers behind one interface. A backend turns C source into a
 * kernel (tj_kernel, tracejit.h): the table of groups the runtime runs and the state
 * that keeps their code alive. TinyCC (tcc.c) compiles in memory, at once, what every
 * plan starts on; the optimizing tier (tier.c) runs the system C compiler in the
 * background, and its kernel is an upgrade laid over TinyCC's once ready (kernel.c).
 * The compile driver (csrc/compile.c) and the module (csrc/module.c) include this
 * header; the runtime does not: it names no compiler (tests/test_layers.py). */
#ifndef TJ_BACKEND_H
#define TJ_BACKEND_H

#include "tracejit.h"

/* compile's `how`: wait for the compile (NOW), compile in another thread if it takes
 * time (BACKGROUND), or only load an object a compile left on disk (IF_CACHED) */
enum { TJ_COMPILE_NOW, TJ_COMPILE_BACKGROUND, TJ_COMPILE_IF_CACHED };

struct tj_backend {
    const char *name;            /* "tcc", "cc" */
    /* 0 while switched off for now (set_tier('tcc')): an upgrade then waits and asks
     * again rather than give up. NULL: always on. */
    int (*enabled)(void);
    /* (a backend of upgrades) how the driver asks for the upgrade when it makes the
     * plan: TJ_COMPILE_IF_CACHED (an object on disk loads at once, else the runtime's
     * policy starts it later) or TJ_COMPILE_NOW (an eager mode). NULL: IF_CACHED. */
    int (*plan_how)(void);
    /* Compiles source into k (empty on entry; its n_groups is the caller's): sets
     * k->backend, k->state and k->groups (NULL while pending: asynchronous backends).
     * 0; -1 with CompileError (TinyCC: the GIL held) or with no exception (an
     * asynchronous backend declined: off, no compiler, not cached; it needs no GIL).
     * st: the module state whose CompileError it raises (read with the GIL only). */
    int (*compile)(tj_state *st, const char *source, int how, tj_kernel *k);
    /* A pending kernel's compile (asynchronous backends; NULL: compile makes k ready;
     * GIL held): 1 ready, 0 pending, -1 failed (the caller frees k). */
    int (*poll)(tj_kernel *k);
    /* (a backend of upgrades) Lays ready k over *base, the kernel a plan runs: *base
     * becomes k, base's table with k's bodies where it has them, owning base's old
     * state (its code stays alive: the new table still calls it, and runs in progress
     * use the old table); k is left empty. 0; -1 no memory (k, base unchanged). GIL. */
    int (*install)(tj_kernel *k, tj_kernel *base);
    void (*free)(tj_kernel *k);  /* GIL held */
};

/* Every backend's compile counts itself here on entry (kernel.c); the count is how a
 * test proves that no backend ran (_C._backend_compiles, the passes-only explain). */
void tj_backend_count_compile(void);
long long tj_backend_compiles(void);

extern const tj_backend tj_backend_tcc;    /* csrc/backend/tcc.c */
extern const tj_backend tj_backend_tier;   /* csrc/backend/tier.c */
extern const tj_backend tj_backend_cuda;   /* csrc/backend/cuda.c (free only: see below) */

/* ---- CUDA (csrc/backend/cuda.c; the driver and NVRTC: cuda_api.h) ----------------- */
/* Compiles prog (the CUDA program of schedule s of graph g) for device `ordinal` with
 * NVRTC (images cached in memory by source and architecture), loads it into the
 * device's primary context and allocates its scratch: k becomes a kernel that runs
 * itself (k->run) on torch's current stream. The CUDA row's compile is this, not
 * tj_backend.compile: it needs the program's launch table and slots, not a source
 * alone. st: the module state whose CompileError it raises and whose torch allocates
 * the kernel's copies and names its stream (borrowed: the plan's). 0; -1 + exception
 * (CompileError; RuntimeError: the driver). */
int tj_cuda_kernel_build(tj_state *st, const tj_graph *g, const tj_schedule *s,
                         const tj_cuda_program *prog, int ordinal, tj_kernel *k);

/* What compiles a call's kernel on a device: one row per device (compile.c's table;
 * a new backend is a row there and its files). The driver hands a row a request (the
 * lowered schedule, the result's template, the device's ordinal); `first` emits the
 * plan's first kernel and compiles it at once (every plan starts on it: on the CPU,
 * C for TinyCC); `upgrade`, when not NULL, is an asynchronous backend (its compile may
 * run without the GIL) that compiles `emit_upgrade`'s source (None: nothing to
 * upgrade) in the background, laid over the first kernel once ready (the runtime's
 * tier-up policy, tj_plan_tier_up). */
typedef struct {
    tj_state *st;
    const tj_graph *g;
    const tj_schedule *s;
    const tj_template *tmpl;     /* what the plan returns (a device may refuse some) */
    int device_id;               /* the device's ordinal (DLPack's device_id) */
    /* g's outputs: the template's, n_writes (the caller's arrays written back), then
     * g->n_hidden (the values Python read while tracing, then n_checks checks): the
     * runtime reads all but the template's in host memory */
    int n_writes, n_checks;
} tj_compile_request;
typedef struct {
    int device;                  /* TJ_DEVICE_* (DLPack's device code) */
    const char *name;            /* what compiles its first kernel, for messages */
    /* The first kernel into k (empty on entry; n_groups is the caller's) and its source
     * in *source (a new str: what explain() and last_source show); *emitted: when its
     * code was emitted (the driver's clock: the times split emitting from compiling).
     * 0; -1 + exception (CompileError for a failed compile). GIL held. */
    int (*first)(const tj_compile_request *rq, PyObject **source, double *emitted,
                 tj_kernel *k);
    const tj_backend *upgrade;
    PyObject *(*emit_upgrade)(tj_state *st, const tj_graph *g, const tj_schedule *s);
} tj_backend_row;
/* The row of `device`, NULL when no backend compiles for it. */
const tj_backend_row *tj_backends_for(int device);

/* ---- TinyCC (csrc/backend/tcc.c) ------------------------------------------------ */
typedef struct tj_module tj_module;   /* a compiled unit: code lives until freed */
int tj_tcc_load(void);                /* at import; failure is remembered, not raised */
const char *tj_tcc_path(void);
/* Compiles source; returns the module and sets *entry to symbol `entry_name`
 * (none looked up when entry_name is NULL).
 * NULL + CompileError (with numbered source) on failure. */
tj_module *tj_tcc_compile(tj_state *st, const char *source, const char *entry_name,
                          void **entry);
void tj_tcc_free(tj_module *m);
/* A loaded function's program (an exported plan's C, tracejit.load): compiled like a
 * kernel, with malloc/calloc/free/snprintf/memcmp besides; addrs[i] = symbol names[i].
 * NULL + CompileError. */
tj_module *tj_tcc_compile_program(tj_state *st, const char *source, const char *const *names,
                                  void **addrs, int n);

/* ---- the optimizing tier (csrc/backend/tier.c) ---------------------------------- */
enum { TJ_TIER_OFF, TJ_TIER_AUTO, TJ_TIER_EAGER };      /* modes */
int tj_tier_mode(void);
int tj_tier_set_mode(const char *mode);       /* "auto", "eager", "tcc"; -1 unknown */
void tj_tier_set_include(const char *dir);    /* where prims.c and ops.h are shipped */

#endif
