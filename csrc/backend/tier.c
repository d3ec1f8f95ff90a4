/* The optimizing tier: a hot plan's elementwise groups recompiled by the system C
 * compiler (csrc/emit/emit_fused.c writes the C), in a background thread, loaded with
 * dlopen and swapped in by the plan's next call (csrc/runtime.c); calls never wait.
 * As a backend (backend.h) its kernel is an upgrade: pending while the job runs, then
 * TinyCC's table with the fused bodies laid over it, owning TinyCC's kernel.
 * Contract:
 *  - The compiler is TRACEJIT_CC, else the first of cc, gcc, clang on PATH; with none
 *    (or TRACEJIT_TIER=tcc) everything stays on TinyCC.
 *  - Compiled objects are cached on disk in TRACEJIT_CACHE_DIR (default
 *    $XDG_CACHE_HOME/tracejit or ~/.cache/tracejit), named by a hash of the source,
 *    the helpers it includes (their contents), the compiler (path, size, mtime), the
 *    flags and the CPU's vector extensions.
 *    A file appears under its final name only by rename(), so concurrent processes
 *    never load a half-written object. The directory is kept under
 *    TRACEJIT_CACHE_MB (default 256) MiB, least recently used first out.
 *  - One compile at a time (a process-wide lock); a forked child forgets the lock
 *    and any compile in flight (its plans stay on TinyCC until they tier up anew).
 *  - Jobs are shared by their thread and their plan (two references); whichever lets
 *    go last frees it. Nothing here touches Python objects off the GIL.
 *  - A failed compile leaves the plan on TinyCC; at TRACEJIT_DEBUG >= 3 the compiler's
 *    diagnostics are kept and job_poll (GIL held) reports the failure on stderr. */
#define _GNU_SOURCE
#include "backend/backend.h"
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

extern char **environ;

/* Error messages may be cut short; paths are checked where they are made. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

typedef struct tj_tier_job tj_tier_job;
struct tj_tier_job {
    atomic_int state;        /* 0 pending, 1 ready, -1 failed */
    atomic_int refs;
    char *src;
    char dir[4096];          /* the cache directory */
    char so[4200];           /* the object's path */
    void *handle;            /* dlopen'ed object, until taken */
    void *fused;             /* its tj_fused table */
    char error[512];
    int debug;               /* TRACEJIT_DEBUG when the job started */
    int reported;            /* its failure was reported (job_poll) */
    char *diag;              /* debug >= 3: the failed compiler's output (malloc'ed) */
};

static pthread_mutex_t compile_mu = PTHREAD_MUTEX_INITIALIZER;
static int mode = -1;                  /* TJ_TIER_* */
static char cc[4096], inc_dir[4096];
static int cc_state;                   /* 0 unknown, 1 found, -1 none */
static uint64_t cc_salt;

static void forget_after_fork(void) { pthread_mutex_init(&compile_mu, NULL); }

int tj_tier_mode(void) {
    if (mode < 0) {
        const char *e = getenv("TRACEJIT_TIER");
        mode = !e || !*e || !strcmp(e, "auto") ? TJ_TIER_AUTO
               : !strcmp(e, "eager") || !strcmp(e, "opt") ? TJ_TIER_EAGER : TJ_TIER_OFF;
        pthread_atfork(NULL, NULL, forget_after_fork);
    }
    return mode;
}

int tj_tier_set_mode(const char *m) {
    int v = !strcmp(m, "auto") ? TJ_TIER_AUTO : !strcmp(m, "eager") ? TJ_TIER_EAGER
            : !strcmp(m, "tcc") ? TJ_TIER_OFF : -1;
    if (v < 0) return -1;
    tj_tier_mode();
    mode = v;
    return 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

/* The helpers' contents (prims.c, vmath.h, prims_random.h, ...) name every object too:
 * an object compiled against another version's helpers (another random stream, other
 * polynomials) is never loaded beside TinyCC's primitives of this one. The sum of each
 * file's hash, so the directory's order does not matter. */
static uint64_t inc_salt;

static uint64_t hash_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4400], buf[8192];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        FILE *f = fopen(p, "rb");
        if (!f) continue;
        uint64_t h = fnv(14695981039346656037ULL, de->d_name, strlen(de->d_name));
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = fnv(h, buf, n);
        fclose(f);
        sum += h;
    }
    closedir(d);
    return sum;
}

void tj_tier_set_include(const char *dir) {
    snprintf(inc_dir, sizeof inc_dir, "%s", dir);
    inc_salt = hash_dir(inc_dir);
}

/* Sets cc to `name` found on PATH; 0 when it is not there. */
static int search_path(const char *name) {
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; *p;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        snprintf(cc, sizeof cc, "%.*s/%s", (int)len, p, name);
        if (len && !access(cc, X_OK)) return 1;
        p += len + (colon != NULL);
    }
    return 0;
}

/* The compiler, found once: TRACEJIT_CC (a path, or a name on PATH), else the first of
 * cc, gcc, clang on PATH. */
static int find_cc(void) {
    if (cc_state) return cc_state > 0;
    const char *e = getenv("TRACEJIT_CC");
    int found;
    if (e && *e && strchr(e, '/')) found = snprintf(cc, sizeof cc, "%s", e) > 0 && !access(cc, X_OK);
    else if (e && *e) found = search_path(e);
    else found = search_path("cc") || search_path("gcc") || search_path("clang");
    cc_state = found ? 1 : -1;
    if (cc_state > 0) {
        struct stat st;
        if (stat(cc, &st) == 0) {
            cc_salt = fnv(14695981039346656037ULL, &st.st_size, sizeof st.st_size);
            cc_salt = fnv(cc_salt, &st.st_mtime, sizeof st.st_mtime);
        }
        cc_salt = fnv(cc_salt, cc, strlen(cc));
#if defined(__x86_64__) && defined(__GNUC__)
        int isa = !!__builtin_cpu_supports("avx512f") * 4 + !!__builtin_cpu_supports("avx2") * 2 +
                  !!__builtin_cpu_supports("fma");
        cc_salt = fnv(cc_salt, &isa, sizeof isa);
#endif
    }
    return cc_state > 0;
}

static int make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc && errno != EEXIST) return -1;
    }
    return mkdir(path, 0700) && errno != EEXIST ? -1 : 0;
}

/* The cache directory, read anew each time (tests and users may change it). */
static void the_cache_dir(char *dir, size_t cap, int create) {
    const char *e = getenv("TRACEJIT_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"),
               *h = getenv("HOME");
    if (e && *e) snprintf(dir, cap, "%s", e);
    else if (x && *x) snprintf(dir, cap, "%s/tracejit", x);
    else snprintf(dir, cap, "%s/.cache/tracejit", h && *h ? h : "/tmp");
    if (!create) return;
    if (make_dirs(dir) < 0 || access(dir, W_OK) != 0) {
        snprintf(dir, cap, "/tmp/tracejit-%d", (int)getuid());
        make_dirs(dir);
    }
}

/* -fno-thread-jumps: gcc 13's jump threading turns the selects of inlined vmath
 * functions back into branches, and the loop no longer vectorizes (measured 7x slower
 * on softplus; gcc 12 is unaffected); -fopenmp-simd: the `omp simd reduction` of
 * horizontal reduction folds (emit_fused.c), which gcc may then vectorize;
 * -mprefer-vector-width=512: on an AVX-512 CPU gcc's -march=native picks 256-bit vectors,
 * while the tier's loops of transcendentals (GELU's erf, an LSTM cell's sigmoids and
 * tanh) are bound by their arithmetic (TinyCC's primitives, x86-64-v4 clones, already
 * run 512-bit): the GPT and LSTM of benchmarks/bench_models.py at batch 1 measured ~8-15% less CPU
 * time a call (a loaded 2-core machine); elementwise results are the same bits, a fused
 * horizontal sum's order changes with the width (tests allow rounding there) */
#define TJ_CFLAGS "-O3 -march=native -mprefer-vector-width=512 -std=gnu11 -shared -fPIC " \
                  "-fno-math-errno " \
                  "-ffp-contract=off -fno-strict-aliasing -fwrapv -fno-thread-jumps " \
                  "-DTJ_ELEM_ONLY -fopenmp-simd -w"

/* Keeps the cache directory under its size limit: oldest-used objects out first. */
static void evict(const char *dir) {
    long long limit = tj_env_int("TRACEJIT_CACHE_MB", 256) << 20;
    DIR *d = opendir(dir);
    if (!d) return;
    struct { char name[256]; time_t t; off_t size; } f[512];
    int n = 0;
    long long total = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 512) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "tj-", 3) || len < 4 || strcmp(de->d_name + len - 3, ".so")) continue;
        char p[4600];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &st)) continue;
        snprintf(f[n].name, sizeof f[n].name, "%s", de->d_name);
        f[n].t = st.st_mtime;
        f[n].size = st.st_size;
        total += st.st_size;
        n++;
    }
    closedir(d);
    while (total > limit && n) {
        int old = 0;
        for (int k = 1; k < n; k++) if (f[k].t < f[old].t) old = k;
        char p[4600];
        snprintf(p, sizeof p, "%s/%s", dir, f[old].name);
        unlink(p);
        total -= f[old].size;
        f[old] = f[--n];
    }
}

static int load(struct tj_tier_job *j) {
    j->handle = dlopen(j->so, RTLD_NOW | RTLD_LOCAL);
    if (!j->handle) {
        snprintf(j->error, sizeof j->error, "dlopen: %s", dlerror());
        return -1;
    }
    j->fused = dlsym(j->handle, "tj_fused");
    if (!j->fused) {
        snprintf(j->error, sizeof j->error, "the object lacks tj_fused");
        dlclose(j->handle);
        j->handle = NULL;
        return -1;
    }
    utime(j->so, NULL);   /* recently used: last out of the cache */
    return 0;
}

/* Up to `cap` bytes of the file at path, NUL-terminated (malloc'ed), or NULL. */
static char *read_text(const char *path, size_t cap) {
    FILE *fp = fopen(path, "r");
    char *buf = fp ? malloc(cap + 1) : NULL;
    size_t n = buf ? fread(buf, 1, cap, fp) : 0;
    if (buf) buf[n] = 0;
    if (fp) fclose(fp);
    return buf;
}

static int compile(struct tj_tier_job *j) {
    char base[4200], c_path[4300], tmp_so[4300];
    snprintf(base, sizeof base, "%.*s.%d.%lx", (int)(strlen(j->so) - 3), j->so, (int)getpid(),
             (unsigned long)pthread_self());
    snprintf(c_path, sizeof c_path, "%s.c", base);
    snprintf(tmp_so, sizeof tmp_so, "%s.tmp", base);
    FILE *fp = fopen(c_path, "w");
    if (!fp || fputs(j->src, fp) < 0 || fclose(fp) != 0) {
        snprintf(j->error, sizeof j->error, "cannot write %s", c_path);
        return -1;
    }
    char inc[4200];
    snprintf(inc, sizeof inc, "-I%s", inc_dir);
    char flags[] = TJ_CFLAGS;
    char *argv[48];
    int argc = 0;
    argv[argc++] = cc;
    for (char *t = strtok(flags, " "); t && argc < 40; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc++] = inc;
    argv[argc++] = "-o";
    argv[argc++] = tmp_so;
    argv[argc++] = c_path;
    argv[argc++] = "-lmvec";
    argv[argc++] = "-lm";
    argv[argc] = NULL;
    /* the compiler's output is of interest only when debugging (-w: errors only) */
    char log_path[4300];
    snprintf(log_path, sizeof log_path, "%s.log", base);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (j->debug >= 3)
        posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    else
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, cc, &fa, NULL, argv, environ), status = -1;
    posix_spawn_file_actions_destroy(&fa);
    if (rc == 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    unlink(c_path);
    int failed = rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    if (j->debug >= 3) {
        if (failed) j->diag = read_text(log_path, 8192);
        unlink(log_path);
    }
    if (failed) {
        snprintf(j->error, sizeof j->error, "%s failed (status %d)", cc, status);
        unlink(tmp_so);
        return -1;
    }
    if (rename(tmp_so, j->so) != 0) {
        snprintf(j->error, sizeof j->error, "cannot rename to %s", j->so);
        unlink(tmp_so);
        return -1;
    }
    return 0;
}

static void job_release(struct tj_tier_job *j) {
    if (atomic_fetch_sub(&j->refs, 1) != 1) return;
    if (j->handle) dlclose(j->handle);
    free(j->diag);
    free(j->src);
    free(j);
}

static void *job_thread(void *arg) {
    struct tj_tier_job *j = arg;
    pthread_mutex_lock(&compile_mu);
    int rc = access(j->so, R_OK) == 0 ? load(j) : compile(j) < 0 ? -1 : load(j);
    if (rc == 0) evict(j->dir);
    pthread_mutex_unlock(&compile_mu);
    atomic_store(&j->state, rc == 0 ? 1 : -1);
    job_release(j);
    return NULL;
}

/* Starts making source's object: loaded at once when cached on disk (IF_CACHED: else
 * NULL), compiled in a background thread (BACKGROUND) or now (NOW). NULL when the tier
 * is off or no compiler exists. Needs no GIL. */
static tj_tier_job *job_start(const char *src, int how) {
    if (tj_tier_mode() == TJ_TIER_OFF || !inc_dir[0] || !find_cc()) return NULL;
    struct tj_tier_job *j = calloc(1, sizeof *j);
    if (!j || !(j->src = strdup(src))) { free(j); return NULL; }
    atomic_init(&j->refs, 1);
    j->debug = tj_debug_level();
    uint64_t h = fnv(cc_salt, src, strlen(src));
    h = fnv(h, TJ_CFLAGS, sizeof TJ_CFLAGS);
    h = fnv(h, &inc_salt, sizeof inc_salt);
    the_cache_dir(j->dir, sizeof j->dir, how != TJ_COMPILE_IF_CACHED);
    if (snprintf(j->so, sizeof j->so - 64, "%s/tj-%016llx.so", j->dir,
                 (unsigned long long)h) >= (int)sizeof j->so - 64) {   /* a path too long */
        free(j->src);
        free(j);
        return NULL;
    }
    if (access(j->so, R_OK) == 0 || how == TJ_COMPILE_NOW) {   /* cached, or asked to wait */
        pthread_mutex_lock(&compile_mu);
        int rc = access(j->so, R_OK) == 0 ? load(j) : compile(j) < 0 ? -1 : load(j);
        if (rc == 0) evict(j->dir);
        pthread_mutex_unlock(&compile_mu);
        atomic_init(&j->state, rc == 0 ? 1 : -1);
        return j;
    }
    if (how == TJ_COMPILE_IF_CACHED) { free(j->src); free(j); return NULL; }
    atomic_fetch_add(&j->refs, 1);   /* the thread's */
    pthread_attr_t attr;
    pthread_t th;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, job_thread, j) != 0) {
        atomic_fetch_sub(&j->refs, 1);
        atomic_init(&j->state, -1);
        snprintf(j->error, sizeof j->error, "cannot start a thread");
    }
    pthread_attr_destroy(&attr);
    return j;
}

/* 1: ready (*fused: the tj_fused table; *handle: the object, the caller's to unload),
 * 0: pending, -1: failed (at TRACEJIT_DEBUG >= 3 reported once on sys.stderr, with the
 * compiler's output). GIL held. */
static int job_poll(tj_tier_job *j, void **fused, void **handle) {
    int s = atomic_load(&j->state);
    if (s == 1) {
        *fused = j->fused;
        *handle = j->handle;
        j->handle = NULL;   /* the caller's now */
    }
    if (s < 0 && j->debug >= 3 && !j->reported) {
        j->reported = 1;
        PySys_FormatStderr("[tracejit] optimizing tier: %s; the kernel stays on TinyCC\n%s",
                           j->error, j->diag ? j->diag : "");
    }
    return s;
}

/* ---- the backend: an upgrade laid over TinyCC's kernel ---------------------------- */

/* A tier kernel's state: the job until it is ready, then the object and its bodies;
 * once installed, the table run (the base's with those bodies) and the base kernel,
 * whose code the table's init/fin/comb still call. */
typedef struct {
    tj_tier_job *job;
    void *handle;
    tj_range_fn const *bodies;   /* per group: its fused body, or NULL */
    tj_gdesc *table;
    tj_kernel base;
} tier_kernel;

static int tier_enabled(void) { return tj_tier_mode() != TJ_TIER_OFF; }

static int tier_plan_how(void) {
    return tj_tier_mode() == TJ_TIER_EAGER ? TJ_COMPILE_NOW : TJ_COMPILE_IF_CACHED;
}

static int tier_compile(tj_state *st, const char *source, int how, tj_kernel *k) {
    tj_backend_count_compile();
    tier_kernel *s = calloc(1, sizeof *s);   /* (no GIL: not PyMem) */
    if (!s) return -1;
    if (!(s->job = job_start(source, how))) { free(s); return -1; }
    k->groups = NULL;
    k->backend = &tj_backend_tier;
    k->state = s;
    return 0;
}

static int tier_poll(tj_kernel *k) {
    tier_kernel *s = k->state;
    void *fused = NULL, *handle = NULL;
    int st = job_poll(s->job, &fused, &handle);
    if (st == 0) return 0;
    job_release(s->job);
    s->job = NULL;
    if (st > 0) {
        s->handle = handle;
        s->bodies = fused;
    }
    return st;
}

static int tier_install(tj_kernel *k, tj_kernel *base) {
    tier_kernel *s = k->state;
    tj_gdesc *g2 = PyMem_Malloc((size_t)base->n_groups * sizeof *g2);
    if (!g2) return -1;
    for (int gi = 0; gi < base->n_groups; gi++) {
        g2[gi] = base->groups[gi];
        if (s->bodies[gi]) g2[gi].body = s->bodies[gi];
    }
    s->table = g2;
    s->base = *base;
    /* field by field, the table last: a run without the GIL reads base->groups (both
     * tables stay valid) */
    base->backend = &tj_backend_tier;
    base->state = s;
    base->groups = g2;
    *k = (tj_kernel){0};
    return 0;
}

static void tier_free(tj_kernel *k) {
    tier_kernel *s = k->state;
    if (!s) return;
    if (s->job) job_release(s->job);
    if (s->handle) dlclose(s->handle);
    PyMem_Free(s->table);
    tj_kernel_free(&s->base);
    free(s);
}

const tj_backend tj_backend_tier = {
    .name = "cc", .enabled = tier_enabled, .plan_how = tier_plan_how, .compile = tier_compile,
    .poll = tier_poll, .install = tier_install, .free = tier_free,
};
