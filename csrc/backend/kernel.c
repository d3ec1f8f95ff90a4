/* Kernels and their upgrades, backend-neutral: what the runtime calls (tracejit.h)
 * so that it names no compiler. Each call goes to the kernel's backend (backend.h).
 * Contract: the runtime decides when an upgrade starts (tj_plan_tier_up's policy);
 * here it is started, polled, laid over the kernel, or given up for good. */
#include "backend/backend.h"

static long long compiles;   /* atomic: the tier's requests may come without the GIL */

void tj_backend_count_compile(void) { __atomic_fetch_add(&compiles, 1, __ATOMIC_RELAXED); }

long long tj_backend_compiles(void) { return __atomic_load_n(&compiles, __ATOMIC_RELAXED); }

void tj_kernel_free(tj_kernel *k) {
    if (k->backend) k->backend->free(k);
    *k = (tj_kernel){0};
}

void tj_upgrade_start(tj_state *st, tj_upgrade *u) {
    if (u->backend->enabled && !u->backend->enabled()) return;   /* asked again later */
    const char *c = PyUnicode_AsUTF8(u->source);
    if (!c) { PyErr_Clear(); Py_CLEAR(u->source); return; }
    if (u->backend->compile(st, c, TJ_COMPILE_BACKGROUND, &u->next) < 0)
        Py_CLEAR(u->source);   /* no compiler: the kernel stays as it is for good */
}

void tj_upgrade_poll(tj_upgrade *u, tj_kernel *k) {
    int st = u->backend->poll ? u->backend->poll(&u->next) : 1;   /* NULL: made ready */
    if (st == 0) return;
    if (st > 0 && u->backend->install(&u->next, k) == 0) {
        u->done = 1;
        return;
    }
    tj_kernel_free(&u->next);   /* failed; or no memory to lay it over (started anew) */
    if (st < 0) Py_CLEAR(u->source);   /* the kernel stays as it is for good */
}

void tj_upgrade_free(tj_upgrade *u) {
    tj_kernel_free(&u->next);
    Py_CLEAR(u->source);
}
