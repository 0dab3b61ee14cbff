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


def dry_run_text(lines: list[str], files: dict[str, str]) -> str:
    """Every file to write (as a heredoc a user can paste), then every command."""
    out = []
    for path, text in files.items():
        folder = os.path.dirname(path) or "."
        out += [f"mkdir -p {shlex.quote(folder)} && cat > {shlex.quote(path)} <<'EOF'",
                text.rstrip("\n"), "EOF"]
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
