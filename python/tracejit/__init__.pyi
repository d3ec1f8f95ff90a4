"""Type stubs of tracejit's public API (__init__.py, _grad.py, _control.py).

A checker reads this file instead of __init__.py, so what is declared here is all a
user's `mypy --strict` sees of `tracejit`: keep it in step with __all__. The point is
that `@tracejit.compile` keeps the decorated function's signature (ParamSpec `_P`,
return `_R`), and that nothing here imports torch (a compiled nn.Module is recognized
structurally, as __init__._is_module does at runtime).
"""
from typing import Any, Callable, Generic, Iterable, Literal, ParamSpec, Protocol, \
    Sequence, TypeVar, overload

from ._C import CacheInfo as CacheInfo
from ._C import CompileError as CompileError
from ._C import CompiledFunction as CompiledFunction
from ._C import InternalError as InternalError
from ._C import TraceError as TraceError
from ._C import TracejitError as TracejitError
from ._C import Tracer as Tracer
from ._explain import Explanation as Explanation

__all__ = ["compile", "CompiledFunction", "CompiledModule", "CacheInfo", "Explanation",
           "TracejitError", "TraceError", "CompileError", "InternalError", "Tracer", "op_table",
           "libtcc_path", "get_num_threads", "set_num_threads", "set_tier", "grad",
           "value_and_grad", "vjp", "export", "save", "load",
           "cond", "while_loop", "fori_loop", "scan", "quantize_dynamic"]
__version__: str

_P = ParamSpec("_P")
_R = TypeVar("_R")
_A = TypeVar("_A")
_O = TypeVar("_O")

# a str is one name (compile and grad accept "n" for ("n",))
_Names = str | Iterable[str]
_Limit = Literal["eager", "error"]
# grad's argnums: one position, or several (the gradient is then a tuple)
_Argnums = int | Sequence[int]


class _ModuleLike(Protocol):
    """What tracejit.compile reads of a torch.nn.Module, as a protocol so that this stub
    needs no torch (a user without torch still type-checks, and `import torch` in a
    stub would make Module Any, which would send every function to the module
    overload). A plain function has neither member, so it never matches."""
    training: bool
    def modules(self) -> Iterable[Any]: ...


_M = TypeVar("_M", bound=_ModuleLike)


class CompiledModule(Generic[_M]):
    """tracejit.compile(nn.Module), generic in the module's type (`CompiledModule[Net]` is
    a types.GenericAlias at run time). A call is Any, as torch types a Module's own
    __call__ (Callable[..., Any])."""
    module: _M
    last_retrace: str | None
    last_source: str | None
    def __init__(self, module: _M, static_argnames: Iterable[str] = (), max_variants: int = 8,
                 on_guard_limit: _Limit = "eager") -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def explain(self, *args: Any, **kwargs: Any) -> Explanation: ...
    # the rest is the underlying CompiledFunction's (CompiledModule.__getattr__)
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def tiers(self) -> list[str]: ...


class _Compile(Protocol):
    """What `compile(static_argnames=...)` returns: the decorator, with compile's
    overloads for its one argument."""
    @overload
    def __call__(self, fn: _M, /) -> CompiledModule[_M]: ...
    @overload
    def __call__(self, fn: Callable[_P, _R], /) -> CompiledFunction[_P, _R]: ...


# The module overload comes first: an nn.Module is callable too, and would otherwise
# become a CompiledFunction[..., Any].
@overload
def compile(fn: _M, *, static_argnames: _Names = (), max_variants: int = 8,
            on_guard_limit: _Limit = "eager") -> CompiledModule[_M]: ...
@overload
def compile(fn: Callable[_P, _R], *, static_argnames: _Names = (), max_variants: int = 8,
            on_guard_limit: _Limit = "eager") -> CompiledFunction[_P, _R]: ...
@overload
def compile(fn: None = None, *, static_argnames: _Names = (), max_variants: int = 8,
            on_guard_limit: _Limit = "eager") -> _Compile: ...


# grad(f) takes f's arguments. The gradient has the structure of the differentiated
# argument(s) (an array, a float, a pytree, or a tuple of them for several argnums),
# which a signature cannot say: Any. With has_aux, f returns (output, aux), and the
# result is (gradient, aux): aux keeps its type when f is typed as returning a tuple.
@overload
def grad(fun: Callable[_P, tuple[Any, _A]], argnums: _Argnums, has_aux: Literal[True], *,
         static_argnames: _Names = ()) -> CompiledFunction[_P, tuple[Any, _A]]: ...
@overload
def grad(fun: Callable[_P, tuple[Any, _A]], argnums: _Argnums = 0, *, has_aux: Literal[True],
         static_argnames: _Names = ()) -> CompiledFunction[_P, tuple[Any, _A]]: ...
@overload
def grad(fun: Callable[_P, Any], argnums: _Argnums = 0, has_aux: bool = False, *,
         static_argnames: _Names = ()) -> CompiledFunction[_P, Any]: ...


# (value, gradient): the value is what f returns, (output, aux) with has_aux, so R
# covers both.
def value_and_grad(fun: Callable[_P, _R], argnums: _Argnums = 0, has_aux: bool = False, *,
                   static_argnames: _Names = ()) -> CompiledFunction[_P, tuple[_R, Any]]: ...


# vjp_fn(ct) returns one cotangent per primal. The primals are not checked against
# fun's parameters: `*primals: P.args` needs a `**kwargs: P.kwargs` vjp does not take.
_VjpFn = Callable[[Any], tuple[Any, ...]]


@overload
def vjp(fun: Callable[..., _R], *primals: Any, has_aux: Literal[False] = False
        ) -> tuple[_R, _VjpFn]: ...
@overload
def vjp(fun: Callable[..., tuple[_O, _A]], *primals: Any, has_aux: Literal[True]
        ) -> tuple[_O, _VjpFn, _A]: ...
@overload
def vjp(fun: Callable[..., Any], *primals: Any, has_aux: bool
        ) -> tuple[Any, _VjpFn] | tuple[Any, _VjpFn, Any]: ...


_Carry = TypeVar("_Carry")

# structured control flow (_control.py): jax.lax's signatures
def cond(pred: Any, true_fun: Callable[..., _R], false_fun: Callable[..., _R],
         *operands: Any) -> _R: ...
def while_loop(cond_fun: Callable[[_Carry], Any], body_fun: Callable[[_Carry], _Carry],
               init_val: _Carry) -> _Carry: ...
def fori_loop(lower: Any, upper: Any, body_fun: Callable[[Any, _Carry], _Carry],
              init_val: _Carry) -> _Carry: ...
def scan(f: Callable[[_Carry, Any], tuple[_Carry, Any]], init: _Carry, xs: Any = None,
         length: int | None = None, reverse: bool = False, unroll: int = 1
         ) -> tuple[_Carry, Any]: ...


def op_table() -> list[dict[str, Any]]: ...
def libtcc_path() -> str | None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
# the C side rejects any other mode with ValueError
def set_tier(mode: Literal["auto", "eager", "tcc"]) -> None: ...
def export(f: Callable[..., Any], *example_args: Any, path: str, name: str | None = None,
           dynamic: dict[Any, Any] | None = None,
           weights: Literal["file", "embed"] = "file") -> str: ...
def save(f: Callable[..., Any], path: str, *example_args: Any) -> str: ...
def load(path: str) -> Callable[..., Any]: ...
def quantize_dynamic(model: Any, qconfig_spec: Any = None, dtype: Any = None,
                     inplace: bool = False, **limits: Any) -> CompiledModule[Any]: ...
