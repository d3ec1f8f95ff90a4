"""Compiled loops (tracejit.scan and fori_loop while a compiled function traces)."""


def compiled_scan(f, init, xs, n, reverse, tree, specs, x_tree, x_leaves):
    return NotImplemented


def compiled_fori(lo, hi, body_fun, init_val, tree, specs):
    return NotImplemented
