"""The mark of a public name: the bottom of the house, importing nothing of rythmiq."""

from __future__ import annotations

from typing import TypeVar, get_type_hints

__all__ = ["public"]


_T = TypeVar("_T")


def _resolve(function: object) -> None:
    """Replace ``function``'s string annotations (``from __future__ import annotations``)
    with the types, so help() and inspect.signature() show ``str | os.PathLike[str] | ...``
    rather than ``'Source'``."""
    if getattr(function, "__annotations__", None):
        hints = get_type_hints(function, include_extras=True)
        # get_type_hints makes a bare None NoneType; help() would print that.
        resolved = {k: None if v is type(None) else v for k, v in hints.items()}
        function.__annotations__ = resolved


def public(obj: _T) -> _T:
    """Mark a class or function as a name of the package root: ``obj.__module__`` becomes
    ``"rythmiq"``, so reprs, tracebacks and pickles name ``rythmiq.ProcessResult``, the
    place users import it from (the root resolves the name lazily, see ``__init__.pyi``).

    A class's own annotations, and a function's, are resolved here, in the defining module,
    because :func:`typing.get_type_hints` would otherwise look them up in the root's
    namespace, which does not hold them; ``help()`` then shows the types themselves. Apply it
    outermost, after ``@dataclass``.
    """
    if isinstance(obj, type):
        # Not inspect.get_annotations: importing inspect costs `import rythmiq` 12 ms.
        own = obj.__dict__.get("__annotations__", {})  # noqa: RUF063
        if own:
            hints = get_type_hints(obj, include_extras=True)
            obj.__annotations__ = {name: hints[name] for name in own}
        init = obj.__dict__.get("__init__")  # its own (a dataclass's generated one, say)
        if init is not None:
            _resolve(init)
    elif callable(obj):
        _resolve(obj)
    obj.__module__ = "rythmiq"
    return obj
