"""The ``rythmiq`` command line (``rythmiq._cli:main`` is the console script).

Modules: :mod:`~rythmiq._cli.app` (the group, :func:`main` and the error edge), one
declaration module per command family (``process``, ``jobs``, ``models``, ``keys``,
``bundle``: options and help, cheap to import) and the runners they defer to
(``process_run``, ``payload_run``, ``models_run``, ``keys_run``, ``bundle_run``: the work,
imported when a command runs, through :mod:`~rythmiq._cli.lazy`, so that ``--help`` loads
no numpy). :mod:`~rythmiq._cli.grouping` turns groups of options into one dataclass each.
"""

from __future__ import annotations

from rythmiq._cli.app import cli, main

__all__ = ["cli", "main"]
