"""Module-level compiled functions for tests/test_processes.py: pickled by reference,
so multiprocessing workers (spawned ones import this module) can run them."""
import numpy as np

import tracejit


@tracejit.compile
def scaled_tanh(x, s):
    return np.tanh(x * s) + x.sum()


def _plain(x, n):
    return x * n + 1.0


plain_compiled = tracejit.compile(_plain, static_argnames=("n",))   # bound under another name


class Holder:
    @staticmethod
    @tracejit.compile
    def method(x):
        return x[::-1] * 2.0


def apply(args):
    """A pool task: runs each compiled function and returns results and cache counts."""
    x, s = args
    return (scaled_tanh(x, s), plain_compiled(x, n=3), Holder.method(x),
            scaled_tanh.cache_info().misses)


def call(fn, x):
    return fn(x)
