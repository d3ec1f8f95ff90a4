/* The thread pool: kernels split a group's outer loop across cores.
 * Contract: tj_pool_for(fn, ctx, ...) runs fn(ctx, lo, hi) over disjoint ranges covering
 * [0, units), on the calling thread plus the pool's workers, and returns when all
 * ranges are done. Ranges are claimed dynamically, so the split depends on timing:
 * callers pass only loops whose iterations write disjoint memory (fuse/emit decide
 * which; a reduced dim is never split), which keeps results bit-identical whatever the
 * thread count. One job runs at a time; a caller that finds the pool busy (another
 * Python thread's kernel) runs its loop alone rather than wait. Workers are started
 * on first use, TRACEJIT_NUM_THREADS of them in all (default: the CPUs this process
 * may run on), and are forgotten in a forked child (restarted there on first use).
 * Called without the GIL; never touches Python objects. */
#define _GNU_SOURCE
#include "tracejit.h"
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define TJ_MAX_THREADS 256
#define TJ_SPIN 20000   /* polls before a worker sleeps (about 20-50 us) */

static struct {
    pthread_mutex_t mu;          /* guards sleeping, generation changes and startup */
    pthread_cond_t wake;
    atomic_flag busy;            /* a job is running */
    int n_threads;               /* 0: not decided yet */
    int started;                 /* workers running (in this process) */
    atomic_ulong generation;     /* bumped per job */
    /* the job */
    tj_task_fn fn;
    void *ctx;
    int64_t units, chunk;
    atomic_llong next;           /* next unclaimed unit */
    atomic_int pending;          /* workers still inside the job */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, ATOMIC_FLAG_INIT};

static int default_threads(void) {
    long long n = tj_env_int("TRACEJIT_NUM_THREADS", LLONG_MIN);   /* LLONG_MIN: unset */
    if (n == LLONG_MIN) {   /* the CPUs this process may use */
        cpu_set_t set;
        n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    }
    return n < 1 ? 1 : n > TJ_MAX_THREADS ? TJ_MAX_THREADS : (int)n;
}

int tj_pool_threads(void) {
    if (!pool.n_threads) pool.n_threads = default_threads();
    return pool.n_threads;
}

int tj_pool_set_threads(int n) {
    if (n < 1 || n > TJ_MAX_THREADS) return -1;
    if (atomic_flag_test_and_set(&pool.busy)) return -2;
    /* every worker would wake for each job, so the running ones are stopped (a new
     * generation with fn = NULL makes each exit) and n are started on next use */
    pthread_mutex_lock(&pool.mu);
    if (pool.started) {
        pool.fn = NULL;
        atomic_store(&pool.pending, pool.n_threads - 1);
        atomic_fetch_add(&pool.generation, 1);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mu);
        while (atomic_load(&pool.pending) > 0) sched_yield();
        pthread_mutex_lock(&pool.mu);
        pool.started = 0;
    }
    pool.n_threads = n;
    pthread_mutex_unlock(&pool.mu);
    atomic_flag_clear(&pool.busy);
    return 0;
}

static void run_ranges(void) {
    for (;;) {
        int64_t lo = atomic_fetch_add(&pool.next, pool.chunk);
        if (lo >= pool.units) return;
        int64_t hi = lo + pool.chunk < pool.units ? lo + pool.chunk : pool.units;
        pool.fn(pool.ctx, lo, hi);
    }
}

static void *worker(void *arg) {
    unsigned long seen = (unsigned long)(uintptr_t)arg;
    for (;;) {
        unsigned long g;
        int spins = 0;
        while ((g = atomic_load(&pool.generation)) == seen && spins < TJ_SPIN) spins++;
        if (g == seen) {
            pthread_mutex_lock(&pool.mu);
            while ((g = atomic_load(&pool.generation)) == seen)
                pthread_cond_wait(&pool.wake, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = g;
        if (!pool.fn) {   /* told to exit */
            atomic_fetch_sub(&pool.pending, 1);
            return NULL;
        }
        run_ranges();
        atomic_fetch_sub(&pool.pending, 1);
    }
}

static void forget_after_fork(void) {
    /* the child has only the forking thread: no workers, no job in flight */
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.wake, NULL);
    atomic_flag_clear(&pool.busy);
    pool.started = 0;
}

static int start_workers(void) {
    static int atfork;
    if (!atfork) {
        if (pthread_atfork(NULL, NULL, forget_after_fork) != 0) return -1;
        atfork = 1;
    }
    unsigned long g = atomic_load(&pool.generation);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 4 << 20);   /* block buffers live on the stack */
    int made = 0;
    for (int k = 1; k < pool.n_threads; k++) {
        pthread_t th;
        if (pthread_create(&th, &attr, worker, (void *)(uintptr_t)g) != 0) break;
        made++;
    }
    pthread_attr_destroy(&attr);
    if (made < pool.n_threads - 1) pool.n_threads = made + 1;   /* what we could get */
    pool.started = 1;
    return 0;
}

void tj_pool_for(tj_task_fn fn, void *ctx, int64_t units, int64_t min_chunk) {
    int nt = tj_pool_threads();
    if (nt < 2 || units < 2 || atomic_flag_test_and_set(&pool.busy)) {
        fn(ctx, 0, units);
        return;
    }
    if (!pool.started) {
        pthread_mutex_lock(&pool.mu);
        int rc = pool.started ? 0 : start_workers();
        pthread_mutex_unlock(&pool.mu);
        nt = pool.n_threads;
        if (rc < 0 || nt < 2) {
            atomic_flag_clear(&pool.busy);
            fn(ctx, 0, units);
            return;
        }
    }
    /* about four ranges per thread, so a slow core does not hold the others up */
    int64_t chunk = (units + 4 * nt - 1) / (4 * nt);
    if (chunk < min_chunk) chunk = min_chunk;
    if (chunk < 1) chunk = 1;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.units = units;
    pool.chunk = chunk;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.pending, nt - 1);
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    run_ranges();
    while (atomic_load(&pool.pending) > 0) sched_yield();
    atomic_flag_clear(&pool.busy);
}
