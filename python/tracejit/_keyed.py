"""Keyed: a value handed to a compiled function as one static argument, compared by
value (a leaf of the cache key). A tuple of numbers would be a pytree whose numbers are
runtime inputs, not part of the key; Pyro's settings and an ELBO's configuration
(pyro.py), Adam's hyperparameters (_pyro_svi.py) and an optimizer's groups and state
(_train_step.py) are keyed this way."""


class Keyed:
    __slots__ = ("value", "_hash")

    def __init__(self, value):
        self.value, self._hash = value, hash(value)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return type(other) is Keyed and self.value == other.value
