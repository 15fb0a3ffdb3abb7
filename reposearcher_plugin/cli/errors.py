"""The CLI's user errors: sub-commands raise ``CommandError``; one function prints it.

Here, not in ``cli/main.py``, so that every sub-command module can import it: ``main`` imports them all.
"""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from typing import Any

from reposearcher_plugin.extras import missing_extra_message

Handler = Callable[..., int]


class CommandError(Exception):
    """A user error: printed as one line, ``reposearcher: error: MESSAGE``, on stderr; exit ``status``."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def reports_errors(handler: Handler) -> Handler:
    """``handler`` with its user errors printed as the one-line error and their status returned.

    ``main`` runs every handler through it. Sub-command handlers are wrapped where they are defined too,
    since a sub-command's parser also serves alone (``add_*_command`` into a parser of one's own)."""

    @functools.wraps(handler)
    def run(args: Any, **kwargs: Any) -> int:
        try:
            return handler(args, **kwargs)
        except CommandError as error:
            return _report(str(error), error.status)
        except ModuleNotFoundError as error:
            message = missing_extra_message(error)
            if message is None:
                raise
            return _report(message, 2)
        except OSError as error:
            if error.errno not in _FULL_DISK:
                raise
            return _report(_full_disk_message(error), 1)
        except Exception as error:
            if not _is_input_error(error):
                raise
            return _report(str(error), 2)

    return run


# a full disk (or quota) is the user's to fix, and every command that writes can meet it; batch rows are
# appended whole, so the same command run again resumes where the full disk stopped it
_FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})


def _full_disk_message(error: OSError) -> str:
    where = f" (writing {error.filename})" if error.filename else ""
    return (
        f"no space left on the device{where}; free some space and run the same command again "
        "(a batch run resumes where it stopped)"
    )


def _is_input_error(error: Exception) -> bool:
    """Whether ``error`` is the index's word on its input (a bad path, a grammar it cannot load). Imported
    only when an error is there: commands that never index never import the index."""
    from reposearcher_plugin.index.languages import GrammarRuntimeError
    from reposearcher_plugin.index.walk import IndexInputError

    return isinstance(error, (IndexInputError, GrammarRuntimeError))


def _report(message: str, status: int) -> int:
    print(f"reposearcher: error: {message}", file=sys.stderr)
    return status
