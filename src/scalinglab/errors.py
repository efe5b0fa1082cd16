"""Domain errors: bad input named in the library's own terms (problem, hint, the settings concerned); the CLI
turns one into a line `error: <problem>; <hint> (<flags>)` and exit code 2 (see cli.main). Also the
interruption a stop signal becomes (exit code 128 + the signal's number)."""

from __future__ import annotations

import signal


class UserError(Exception):
    """Bad input from the user. `problem` and `hint` (the fix) are one line each side of "; ";
    `keys` names the settings concerned (RunSpec/plan field names), which the CLI maps to its flags."""

    exit_code = 2

    def __init__(self, problem: str, hint: str = "", *, keys: tuple[str, ...] | list[str] = ()):
        super().__init__(problem)
        self.problem, self.hint, self.keys = problem, hint, tuple(keys)

    def __reduce__(self):  # keep hint and keys across processes (Ray, multiprocessing)
        return (self.__class__, (self.problem, self.hint), {"keys": self.keys})

    def __str__(self) -> str:
        return f"{self.problem}; {self.hint}" if self.hint else self.problem


class ConfigError(UserError):
    """A setting is missing, unknown, inconsistent or out of range."""


class FolderError(UserError):
    """A RUN/, STUDY/ or DATA/ folder, or a file stored in one, is missing, of the wrong kind or corrupt."""


class Interrupted(BaseException):
    """A stop asked for by SIGINT (Ctrl-C, exit 130) or SIGTERM (exit 143); the message says what was kept.
    Not a KeyboardInterrupt: typer turns those into a bare exit code, and the message would be lost."""

    def __init__(self, message: str = "interrupted", signum: int = signal.SIGINT):
        super().__init__(message)
        self.message, self.signum = message, int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
