"""The errors a user sees as one message, without a traceback, and the exit status each one ends with.

The status tells a caller what failed, the way sysexits(3) does: a scheduled run quarantines a batch only
when its stage ended with DataError's status (the data is bad), never for the others (the machine, a
server or the settings are), which leave the batch to the next run.
"""

import errno


class UserError(Exception):
    """Bad input (params, files, arguments): the message names what and where, and what was expected."""

    exit_code = 1


class DataError(UserError):
    """The data itself is bad: a file that does not parse, a missing column, a batch that breaks the data
    contract."""

    exit_code = 65  # EX_DATAERR


class Unavailable(UserError):
    """A server the command needs (the MLflow tracking server or registry, the Prefect API) does not
    answer; nothing was changed in it."""

    exit_code = 69  # EX_UNAVAILABLE


class TemporaryFailure(UserError):
    """A step failed for a reason that is not the data's (a server, a lock, the machine): nothing was
    refused for it, and the next run tries again."""

    exit_code = 75  # EX_TEMPFAIL


class NoSpace(UserError):
    """The disk filled while writing an output; the last good outputs are kept."""

    exit_code = 74  # EX_IOERR


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
