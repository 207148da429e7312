"""How a `ros2-lmd` job ends: its exit codes, and the one error path (`fail`) every error exit
takes, argument errors included (`Parser`): one line `ros2-lmd <job>: <what was wrong>` on stderr,
never a traceback or a usage block."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_OK = 0
EXIT_FAILED = 1  # the input could not be used: an unreadable bag or checkpoint, bags that failed
EXIT_USAGE = 2  # a bad argument, or a file or setting named by one (as argparse exits)
EXIT_INCIDENTS = 3  # analyze --fail-on-incidents: the bag has sensor incidents
EXIT_OUTPUT = 4  # the outputs could not be written (disk full, permissions): the folder is as it was
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def fail(job: str, message: object, code: int = EXIT_USAGE) -> int:
    """Print the one-line error of `job` ("" for the command itself) and return its exit code."""
    text = " ".join(str(message).split())  # one line, whatever the message holds
    print(f"ros2-lmd {job}: {text}" if job else f"ros2-lmd: {text}", file=sys.stderr)
    return code


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors (unknown option, bad choice, missing argument) go through
    `fail` with EXIT_USAGE; subparsers made by `add_subparsers` are of this class too."""

    def error(self, message: str) -> NoReturn:
        job = self.prog.split(maxsplit=1)[1] if " " in self.prog else ""
        sys.exit(fail(job, f"{message} (see `{self.prog} --help`)"))
