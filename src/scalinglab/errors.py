"""User-facing errors: one line naming the problem and the fix, exit code 2 (see cli.main)."""


class UserError(Exception):
    """Bad input from the user. The message names the problem and the fix, on one line."""

    exit_code = 2
