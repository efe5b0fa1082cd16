"""User-facing errors: one line naming the problem and the fix, exit code 2 (see cli.main); and the
interruption a stop signal becomes (exit code 128 + the signal's number)."""

import signal


class UserError(Exception):
    """Bad input from the user. The message names the problem and the fix, on one line."""

    exit_code = 2


class Interrupted(BaseException):
    """A stop asked for by SIGINT (Ctrl-C, exit 130) or SIGTERM (exit 143); the message says what was kept.
    Not a KeyboardInterrupt: typer turns those into a bare exit code, and the message would be lost."""

    def __init__(self, message: str = "interrupted", signum: int = signal.SIGINT):
        super().__init__(message)
        self.message, self.signum = message, int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
