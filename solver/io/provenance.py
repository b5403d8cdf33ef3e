"""What a result was made with and when: the sinterfem version and git commit, the run.log
header. Nothing here imports MPI or DOLFINx (the sweep's driver reads it without them)."""

import platform
import shlex
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def package_version(distribution: str, fallback: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return fallback


def sinterfem_version() -> str:
    """The installed version, or 0.1.0+source for a source checkout that is not installed."""
    return package_version("sinterfem", "0.1.0+source")


def git_commit(repo: Path = REPO) -> str:
    """The commit checked out in the source tree, read from .git (git may not be installed:
    the toolchain root has none); "" outside a git checkout."""
    git = repo / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: PATH"
            git = (repo / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head  # a detached HEAD is the commit itself
        ref = head.removeprefix("ref: ")
        # a worktree keeps its branches in the main repository's directory
        common = git / "commondir"
        common = (git / common.read_text().strip()).resolve() if common.exists() else git
        if (common / ref).exists():
            return (common / ref).read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(f" {ref}"):
                return line.split()[0]
    except OSError:
        pass
    return ""


def timestamp() -> str:
    """Now, in UTC, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def version_line() -> str:
    """`sinter --version`: the version and the commit."""
    commit = git_commit()
    return f"sinter (sinterfem) {sinterfem_version()}" + (f", commit {commit[:12]}"
                                                          if commit else "")


def run_header(ranks: int, dolfinx_version: str, argv=None) -> list[str]:
    """The first lines of run.log: the command (`argv`: its arguments, default this
    process's), the versions, the ranks, the host, the time."""
    arguments = sys.argv[1:] if argv is None else argv
    return [f"command: {shlex.join(['sinter', *arguments])}",
            f"sinterfem {sinterfem_version()}, git commit {git_commit() or 'unknown'}",
            f"DOLFINx {dolfinx_version}, Python {platform.python_version()} "
            f"({sys.executable})",
            f"ranks: {ranks}, host: {platform.node()}",
            f"started: {timestamp()}"]
