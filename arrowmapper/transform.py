"""Transforms: the four forms a user may pass, normalised into one picklable spec.

* a top-level callable ``f(pl.DataFrame) -> pl.DataFrame | pl.LazyFrame``
* a list of Polars expressions, applied as ``df.select(exprs)``
* a SQL string over the frame, which is called ``self`` (also ``df`` and ``chunk``)
* ``"package.module:function"``, imported in each worker

Each worker applies the transform to every Arrow batch it reads, so it must be row-local (a
per-chunk aggregate would aggregate per batch). Polars runs it on ``POLARS_MAX_THREADS`` threads,
set per worker by the coordinator so workers x threads matches the usable CPUs.
"""

from __future__ import annotations

import importlib
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

_MODULE_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

TransformLike = Any  # Callable | list[pl.Expr] | str | None


@dataclass(frozen=True)
class TransformSpec:
    """A transform as it crosses to worker processes: a kind and a picklable payload."""

    kind: str  # identity | callable | exprs | sql | import
    payload: bytes | str | None = None

    @property
    def label(self) -> str:
        if self.kind in ("sql", "import"):
            return f"{self.kind}: {self.payload!s}"
        return self.kind


def normalize(transform: TransformLike) -> TransformSpec:
    """Check a user's transform in the parent and turn it into a :class:`TransformSpec`."""
    if transform is None:
        return TransformSpec("identity")
    if isinstance(transform, str):
        text = transform.strip()
        if not text:
            return TransformSpec("identity")
        if _MODULE_FUNCTION.match(text):
            load_function(text)  # fail now, in the parent, with a clear message
            return TransformSpec("import", text)
        return TransformSpec("sql", text)
    if isinstance(transform, list | tuple):
        import polars as pl

        bad = [type(e).__name__ for e in transform if not isinstance(e, pl.Expr)]
        if bad:
            raise ConfigError(
                f"a transform list must hold only Polars expressions (pl.col(...)...), got {bad[0]}"
            )
        try:
            return TransformSpec("exprs", pickle.dumps(list(transform)))
        except Exception as exc:
            raise ConfigError(
                "these Polars expressions cannot be sent to worker processes "
                f"({exc}); a Python UDF inside an expression does not pickle: use a top-level "
                "function or 'module:function' instead"
            ) from None
    if callable(transform):
        try:
            payload = pickle.dumps(transform)
            pickle.loads(payload)
        except Exception:
            name = getattr(transform, "__qualname__", repr(transform))
            raise ConfigError(
                f"transform {name!r} cannot be sent to worker processes: it must be a top-level "
                "function of an importable module (not a lambda, closure or __main__ function "
                "defined interactively); or pass it as 'package.module:function'"
            ) from None
        return TransformSpec("callable", payload)
    raise ConfigError(
        "transform must be None, a callable, a list of Polars expressions, a SQL string or "
        f"'module:function', got {type(transform).__name__}"
    )


def load_function(ref: str) -> Callable[..., Any]:
    module_name, _, func_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"transform {ref!r}: cannot import module {module_name!r} ({exc})"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(
            f"transform {ref!r}: module {module_name!r} has no function {func_name!r}"
        )
    return func  # type: ignore[no-any-return]


class Transformer:
    """The worker-side form of a spec: ``apply(DataFrame) -> DataFrame``."""

    def __init__(self, spec: TransformSpec) -> None:
        self.spec = spec
        self._fn: Callable[[Any], Any] | None = None
        self._exprs: list[Any] | None = None
        if spec.kind == "callable":
            assert isinstance(spec.payload, bytes)
            self._fn = pickle.loads(spec.payload)
        elif spec.kind == "import":
            assert isinstance(spec.payload, str)
            self._fn = load_function(spec.payload)
        elif spec.kind == "exprs":
            assert isinstance(spec.payload, bytes)
            self._exprs = pickle.loads(spec.payload)

    def apply(self, df: Any) -> Any:
        import polars as pl

        kind = self.spec.kind
        if kind == "identity":
            return df
        if self._exprs is not None:
            return df.select(self._exprs)
        if kind == "sql":
            ctx = pl.SQLContext(frames={"self": df, "df": df, "chunk": df})
            return ctx.execute(str(self.spec.payload), eager=True)
        assert self._fn is not None
        out = self._fn(df)
        if isinstance(out, pl.LazyFrame):
            out = out.collect()
        if not isinstance(out, pl.DataFrame):
            raise TypeError(
                f"transform {self.spec.label} returned {type(out).__name__}; it must return a "
                "polars DataFrame or LazyFrame"
            )
        return out

    def batches(self, batch: Any) -> Iterator[Any]:
        """Transform one Arrow record batch; yield the resulting Arrow batches."""
        if self.spec.kind == "identity":  # before importing Polars: ~0.5 s a process
            yield batch
            return
        import polars as pl

        df = pl.from_arrow(batch)
        assert isinstance(df, pl.DataFrame)
        out = self.apply(df)
        yield from out.to_arrow().to_batches()
