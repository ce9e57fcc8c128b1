"""Option groups: click options that reach a command as one frozen dataclass each.

An :class:`OptionGroup` is a decorator that adds its options to a command; a
:class:`GroupedCommand` then hands the command function one dataclass per group instead of
one parameter per option, and its ``--help`` lists the options under one heading per group::

    QUALITY = OptionGroup(
        "Quality",
        "quality",
        QualityOptions,  # a frozen dataclass with fields threshold and skip_ocr_on_fail
        (
            option("--threshold", type=float, help="Quality gate (default 0.80)."),
            option("--skip-ocr-on-fail", is_flag=True, help="No OCR for failing images."),
        ),
    )

    @click.command(cls=GroupedCommand)
    @QUALITY
    def process(quality: QualityOptions) -> int: ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["GroupedCommand", "GroupedOption", "OptionGroup", "OptionSpec", "option"]

F = TypeVar("F", bound=Callable[..., Any])

#: The heading of the options that belong to no group (``--help``).
OTHER_HEADING = "Other options"


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """The arguments of one :func:`click.option`, kept until its group adds it."""

    decls: tuple[str, ...]
    attrs: dict[str, Any]


def option(*decls: str, **attrs: Any) -> OptionSpec:
    """One option of an :class:`OptionGroup`; takes what :func:`click.option` takes."""
    return OptionSpec(decls, attrs)


@dataclasses.dataclass(frozen=True, eq=False)
class OptionGroup:
    """Options that reach the command function as one frozen dataclass.

    Attributes:
        heading: The section of ``--help`` that lists the options.
        keyword: The command function's parameter that receives the dataclass.
        into: The frozen dataclass; its fields are the options' parameter names.
        specs: The options, in the order ``--help`` lists them.
    """

    heading: str
    keyword: str
    into: type[Any]
    specs: tuple[OptionSpec, ...]

    def __call__(self, f: F) -> F:
        """Add the group's options to the command function ``f``."""
        for spec in reversed(self.specs):  # click lists decorators' options top to bottom
            f = click.option(*spec.decls, cls=GroupedOption, group=self, **spec.attrs)(f)
        return f

    def pack(self, params: dict[str, Any]) -> Any:
        """The dataclass made of the group's values, which are taken out of ``params``."""
        fields = [f.name for f in dataclasses.fields(self.into)]
        return self.into(**{name: params.pop(name) for name in fields})


class GroupedOption(click.Option):
    """A click option that belongs to an :class:`OptionGroup`."""

    def __init__(self, *args: Any, group: OptionGroup, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group


class GroupedCommand(click.Command):
    """A command whose function takes one dataclass per option group.

    Its ``--help`` shows one section per group, in the order of the groups' first options,
    then the options of no group (``--help`` itself) under "Other options".
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for group in self._groups():
            names = {p.name for p in self.params if getattr(p, "group", None) is group}
            fields = {f.name for f in dataclasses.fields(group.into)}
            if names != fields:
                raise TypeError(
                    f"{group.into.__name__} has fields {sorted(fields)}, "
                    f"but the {group.heading!r} options are {sorted(n or '' for n in names)}"
                )

    def _groups(self) -> list[OptionGroup]:
        groups = [p.group for p in self.params if isinstance(p, GroupedOption)]
        return list(dict.fromkeys(groups))

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command with each group's values packed into its dataclass."""
        for group in self._groups():
            ctx.params[group.keyword] = group.pack(ctx.params)
        return super().invoke(ctx)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """One section of ``--help`` per option group, then the other options."""
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or isinstance(param, click.Argument):
                continue
            heading = param.group.heading if isinstance(param, GroupedOption) else OTHER_HEADING
            sections.setdefault(heading, []).append(record)
        for heading, rows in sections.items():
            with formatter.section(heading):
                formatter.write_dl(rows)
