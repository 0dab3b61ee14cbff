"""What a submission does, as shell lines: printed for a dry run, else run one by one."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys


def write_files(files: dict[str, str]) -> None:
    """Writes each generated file (a manifest, a script) at its path."""
    for path, text in files.items():
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


def heredoc_delimiter(text: str) -> str:
    """``EOF``, or ``EOF_1``, ``EOF_2``, …: the first that is no line of ``text`` (a line equal
    to the delimiter would end the heredoc there, and bash would run the lines after it)."""
    lines = set(text.split("\n"))
    delimiter, n = "EOF", 0
    while delimiter in lines:
        n += 1
        delimiter = f"EOF_{n}"
    return delimiter


def dry_run_text(lines: list[str], files: dict[str, str]) -> str:
    """Every file to write (as a heredoc a user can paste), then every command.

    The heredoc's delimiter is quoted (nothing in the text is expanded) and occurs in no line of
    the text, so pasting writes each file exactly as ``write_files`` would.
    """
    out = []
    for path, text in files.items():
        folder = os.path.dirname(path) or "."
        end = heredoc_delimiter(text)
        out += [f"mkdir -p {shlex.quote(folder)} && cat > {shlex.quote(path)} <<'{end}'",
                text.removesuffix("\n"), end]
    return "\n".join(out + lines)


def run(lines: list[str], files: dict[str, str], out=None) -> int:
    """Writes the files, then runs each line with bash; stops at the first failure (its code)."""
    out = out or sys.stdout
    write_files(files)
    for path in files:
        out.write(f"wrote {path}\n")
    for line in lines:
        out.write(f"+ {line}\n")
        out.flush()
        code = subprocess.run(["bash", "-c", line]).returncode
        if code:
            out.write(f"error: exit status {code} from: {line}\n")
            return code
    return 0
