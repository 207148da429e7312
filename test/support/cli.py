"""Running `ros2-lmd` in-process as the CLI tests do, and reading its one-line errors."""

from __future__ import annotations

from ros2_lmd import cli


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    """`ros2-lmd ARGV...` in this process: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *names: object) -> str:
    """The single stderr line of a failed job (progress-bar lines aside); it names each of `names`."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("analysing")]
    assert len(lines) == 1, err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]
