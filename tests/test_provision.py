"""bin/provision's output while it builds a root: one line per phase, the rest in a log file.

The script runs as it is, but for the recipe's look-up of the host's Debian mirror (which
depends on the host's apt configuration): debootstrap and chroot are fakes on PATH that print
as much as the real build (about 2,000 lines) and fail on request, and the cache is a
temporary directory, so the real roots are neither built nor touched.
"""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

BUILD_LINES = 2000

FAKE_DEBOOTSTRAP = f"""#!/bin/sh
# debootstrap --variant=minbase SUITE TARGET MIRROR
mkdir -p "$3/etc"
for i in $(seq {BUILD_LINES // 4}); do echo "I: Retrieving package $i"; done
[ "$FAKE_FAIL" != debootstrap ] || {{ echo "E: Couldn't download packages"; exit 1; }}
"""

FAKE_CHROOT = f"""#!/bin/sh
# chroot ROOT COMMAND...: only apt-get's calls of the recipe come here
shift
case "$*" in
  *update*) for i in $(seq 20); do echo "Get:$i http://mirror trixie InRelease"; done ;;
  *install*) for i in $(seq {3 * BUILD_LINES // 4}); do echo "Setting up package-$i ..."; done
             [ "$FAKE_FAIL" != install ] || {{ echo "E: Unable to locate package nosuch"
                                               exit 100; }} ;;
esac
"""


def provision(tmp_path, fail=None):
    script = (REPO / "bin" / "provision").read_text()
    recipe = script.index("# recipe-begin\n") + len("# recipe-begin\n")
    lookup = script.index("if ! command -v debootstrap", recipe)
    assert "mirror=" in script[recipe:lookup]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "provision").write_text(
        script[:recipe] + "mirror=http://deb.example/debian\n" + script[lookup:])
    (bin_dir / "packages-trixie.txt").write_text(
        (REPO / "bin" / "packages-trixie.txt").read_text())
    fakes = tmp_path / "fakes"
    fakes.mkdir(exist_ok=True)
    for name, text in (("debootstrap", FAKE_DEBOOTSTRAP), ("chroot", FAKE_CHROOT)):
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}", "SINTERFEM_TOOLCHAIN": "root",
           "SINTERFEM_CACHE": str(tmp_path / "cache"), "FAKE_FAIL": fail or ""}
    return subprocess.run(["bash", str(bin_dir / "provision"), "trixie"], env=env,
                          capture_output=True, text=True, timeout=120)


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="bin/provision builds a root as root only")


@needs_root
def test_a_build_prints_one_line_per_phase(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    # roots of older package lists with their logs (another worktree may run on the more
    # recent one), an unfinished build and a root of the other suite
    for name, completed in (("trixie-000000000000", 1000), ("trixie-111111111111", 2000),
                            ("sid-000000000000", 1000)):
        (cache / name).mkdir()
        (cache / name / ".complete").touch()
        os.utime(cache / name / ".complete", (completed, completed))
        (cache / f"{name}.log").write_text("old\n")
    (cache / "trixie-222222222222.partial").mkdir()
    result = provision(tmp_path)
    assert result.returncode == 0, result.stderr
    root = Path(result.stdout.strip())
    assert (root / ".complete").exists() and root.parent == cache
    lines = result.stderr.splitlines()
    log = cache / f"{root.name}.log"
    assert lines[0] == f"provision: building the toolchain root; the full output goes to {log}"
    phases = [line.split("] ")[1] for line in lines if "] " in line]
    listed = (tmp_path / "bin" / "packages-trixie.txt").read_text().splitlines()
    packages = sum(len(line.split()) for line in listed if not line.lstrip().startswith("#"))
    assert packages > 10
    assert phases == ["debootstrap: a minimal Debian trixie", "apt update",
                      f"apt install: {packages} packages and their dependencies", "apt clean"]
    assert lines[-1].startswith("provision: root ready in ") and len(lines) <= 8
    assert len(log.read_text().splitlines()) > BUILD_LINES
    # at most 2 roots per suite: the new one and the most recent other one
    assert sorted(path.name for path in cache.iterdir()) == sorted(
        [root.name, log.name, "trixie.lock", "trixie-111111111111", "trixie-111111111111.log",
         "sid-000000000000", "sid-000000000000.log"])
    # built: a second call answers at once, silently
    again = provision(tmp_path)
    assert again.stdout == result.stdout and again.stderr == ""


@needs_root
@pytest.mark.parametrize(("fail", "last_line"), [
    ("debootstrap", "E: Couldn't download packages"),
    ("install", "E: Unable to locate package nosuch"),
])
def test_a_failed_build_prints_the_log_path_and_its_end(tmp_path, fail, last_line):
    result = provision(tmp_path, fail)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.splitlines()
    log = next((tmp_path / "cache").glob("trixie-*.log"))
    failed = next(i for i, line in enumerate(lines) if " failed (exit " in line)
    assert lines[failed] == (f"provision: building the trixie root failed (exit "
                             f"{1 if fail == 'debootstrap' else 100}); full log: {log}")
    assert lines[failed + 1] == "provision: its last 30 lines:"
    assert lines[failed + 2:] == log.read_text().splitlines()[-30:]
    assert lines[-1] == last_line
    assert failed <= 5  # the phases before it, one line each
    assert not [path for path in (tmp_path / "cache").iterdir()
                if path.name.startswith("trixie-") and path.suffix != ".log"
                and not path.name.endswith(".partial")]
