"""The one exception type for bad input: its message is shown to the user as is, without a traceback."""


class UserError(Exception):
    """Bad input (params, data, files): the message names what and where, and what was expected."""
