"""The ``disrupt`` command line. Results go to stdout, diagnostics to stderr.

Exit codes: 0 ok, 1 a runtime failure (bad file, bad checkpoint), 2 a usage error.
Heavy imports (torch) happen inside commands so ``--help`` is instant.

:mod:`disrupt.cli.app` holds the typer app, the shared option parsing and the small
listing commands; each larger command has its own module, imported here so that it
registers on the app.
"""

from disrupt.cli import protect, verify, bench, listing  # noqa: F401, I001  (registers the commands, in this order)
from disrupt.cli.app import EXIT_FAILURE, EXIT_USAGE, UsageError, app, main, parse_eps
from disrupt.cli.app import exit_on_sigterm as _exit_on_sigterm  # noqa: F401  (tests)

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "UsageError", "app", "main", "parse_eps"]
