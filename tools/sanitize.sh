#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of the test-suite, then a
# LeakSanitizer check of a compile-and-replay loop (tools/leakcheck.py).
#
#   bash tools/sanitize.sh            # build + full test-suite + leak check
#   bash tools/sanitize.sh -x tests/test_cache.py   # extra args go to pytest
#
# The extension is built with -fsanitize=address,undefined into build/asan (the
# in-place build in python/tracejit is left alone) and imported from there.
# CPython is not instrumented, so the ASan runtime is LD_PRELOADed (it ships
# with gcc) and PYTHONMALLOC=malloc routes every PyMem/PyObject allocation
# through ASan's malloc, so overflows of Python-allocated buffers are caught
# too. Code libtcc generates at run time is not instrumented; the primitives
# it calls (compiled by gcc into the extension) are. UBSan reports go to
# build/asan/ubsan.*; any report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/asan
CC=${CC:-gcc}
asan_rt=$($CC -print-file-name=libasan.so)
if { [ ! -e "$asan_rt" ] || [ "$asan_rt" = libasan.so ]; } && command -v apt-get >/dev/null \
        && [ "$(id -u)" = 0 ]; then
    echo "== installing gcc's sanitizer runtimes"
    apt-get update -qq && apt-get install -y -qq gcc libasan8 libubsan1 >/dev/null
    asan_rt=$($CC -print-file-name=libasan.so)
fi
if [ ! -e "$asan_rt" ] || [ "$asan_rt" = libasan.so ]; then
    echo "sanitize.sh: $CC has no libasan.so (apt-get install gcc, or libasan8)" >&2
    exit 2
fi
# libstdc++ preloaded after the ASan runtime, so its C++ exception interceptor finds
# the real __cxa_throw at start-up (else torch's first C++ exception aborts: "CHECK
# failed: real___cxa_throw != 0")
cxx_rt=$($CC -print-file-name=libstdc++.so.6)
[ -e "$cxx_rt" ] && asan_rt="$asan_rt:$cxx_rt"
PY=$(python -c 'import sys; print(sys.executable)')   # not a shell shim: LSan would
rm -rf "$out"                                             # judge the shim's bash too
mkdir -p "$out/tracejit"
cp python/tracejit/*.py python/tracejit/*.pyi python/tracejit/py.typed "$out/tracejit/"
san="-fsanitize=address,undefined -fno-omit-frame-pointer -g"
echo "== building the extension with $san"
CC=$CC TRACEJIT_WERROR=1 TRACEJIT_CFLAGS="$san -O1" LDFLAGS="$san" \
    "$PY" setup.py -q build_ext --build-lib "$out" --build-temp "$out/tmp" >"$out/build.log" 2>&1 \
    || { cat "$out/build.log"; exit 1; }
cp -r python/tracejit/_include "$out/tracejit/"   # the optimizing tier's headers (setup.py)
rm -f "$out"/ubsan.* "$out"/lsan.*

run() {   # the sanitized environment; detect_leaks=0 for the suite: CPython itself
          # does not free everything at exit (the leak check below is targeted)
    env PYTHONPATH="$out" LD_PRELOAD="$asan_rt" PYTHONMALLOC=malloc \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:${ASAN_EXTRA:-}" \
        UBSAN_OPTIONS="print_stacktrace=1:log_path=$PWD/$out/ubsan" \
        TRACEJIT_SANITIZED=1 TRACEJIT_LEAK_SCALE=${SAN_LEAK_SCALE:-0.05} \
        TRACEJIT_FUZZ_EXAMPLES=${SAN_FUZZ_EXAMPLES:-100} "$@"
}

# the suite takes about 2.7x the plain run's time under the sanitizers. SAN_JOBS=N
# spreads it over N workers (pytest-xdist; a file stays on one worker, in its order):
# 17.5 min instead of about 25 on 2 cores, every test passing, but which files share a
# process then varies from run to run, so CI stays serial until that has been run more
jobs=${SAN_JOBS:-1}
spread=()
if [ "$jobs" -gt 1 ] && "$PY" -c "import xdist" 2>/dev/null; then
    spread=(-n "$jobs" --dist loadfile -p no:benchmark)
else
    jobs=1
fi
echo "== test-suite under ASan+UBSan (${jobs} worker(s))"
run "$PY" -m pytest -q -p no:cacheprovider -x "${spread[@]}" "${@:-tests}"

echo "== leak check (LeakSanitizer) of a compile-and-replay loop"
# full (slow) unwinding: CPython has no frame pointers, and a leak allocated by a
# CPython API that tracejit called must show the tracejit frame (tools/leakcheck.py)
env PYTHONPATH="$out" LD_PRELOAD="$asan_rt" PYTHONMALLOC=malloc \
    ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:fast_unwind_on_malloc=0:malloc_context_size=100" \
    LSAN_OPTIONS="exitcode=0:log_path=$PWD/$out/lsan" \
    UBSAN_OPTIONS="print_stacktrace=1:log_path=$PWD/$out/ubsan" \
    "$PY" tools/leakcheck.py "${LEAK_ROUNDS:-20}"
"$PY" tools/leakcheck.py --report "$out"/lsan.*

# (the sanitizers share one log path: ASan's warnings for the huge allocations the
# out-of-memory tests ask for, allocator_may_return_null=1, land there too and are
# expected; any other line is a report)
if ls "$out"/ubsan.* >/dev/null 2>&1 && \
        grep -qv "WARNING: AddressSanitizer failed to allocate" "$out"/ubsan.*; then
    echo "== UndefinedBehaviorSanitizer reports:" >&2
    cat "$out"/ubsan.* >&2
    exit 1
fi
echo "== sanitize.sh: clean (ASan+UBSan test-suite, LSan leak check)"
