"""The mark of a public name: the bottom of the house, importing nothing of rythmiq."""

from __future__ import annotations

from typing import TypeVar, get_type_hints

__all__ = ["public"]


_T = TypeVar("_T")


def public(obj: _T) -> _T:
    """Mark a class or function as a name of the package root: ``obj.__module__`` becomes
    ``"rythmiq"``, so reprs, tracebacks and pickles name ``rythmiq.ProcessResult``, the
    place users import it from (the root resolves the name lazily, see ``__init__.pyi``).

    A class's own annotations are resolved here, in its defining module, because
    :func:`typing.get_type_hints` would otherwise look them up in the root's namespace,
    which does not hold them. Apply it outermost, after ``@dataclass``.
    """
    if isinstance(obj, type):
        # Not inspect.get_annotations: importing inspect costs `import rythmiq` 12 ms.
        own = obj.__dict__.get("__annotations__", {})  # noqa: RUF063
        if own:
            hints = get_type_hints(obj, include_extras=True)
            obj.__annotations__ = {name: hints[name] for name in own}
    obj.__module__ = "rythmiq"
    return obj
