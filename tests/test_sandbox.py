"""Hostile programs through the code oracle: each one fails within its limits and harms nothing outside.

Every hostile completion below would *pass* its (trivial) tests if its attack
succeeded, so a failure verdict shows the sandbox stopped it. They run all at
once, mixed with correct completions that must still pass.
"""

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from pts import sandbox
from pts.sandbox import Limits, Sandbox
from pts.tasks.code import CodeOracle, CodeReference

LIMITS = Limits(wall_seconds=3.0, cpu_seconds=3, memory_bytes=512 << 20, processes=16, output_bytes=1 << 20)
ADD = CodeReference(
    header='def add(a, b):\n    """Sum of a and b."""\n', tests="assert add(1, 2) == 3\n", entry_point="add"
)


def require(condition: bool, what: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is needed by this test; CI must install it (make install does)")
        pytest.skip(f"{what} is not available")


@pytest.fixture
def victim():
    """A world-writable folder outside the sandbox's directory, /tmp and home, with two files in it."""
    folder = Path("/var/tmp") / f"pts-victim-{os.getpid()}-{time.monotonic_ns()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    for name in ("keep.txt", "delete-me.txt"):
        (folder / name).write_text("original\n")
        (folder / name).chmod(0o666)
    yield folder
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


@pytest.fixture
def listener():
    """A TCP server on the host's loopback: a program with network access could connect to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def _body(code: str) -> str:
    """``code`` as the body of ``add``, followed by the right answer."""
    lines = "".join(f"    {line}\n" for line in code.strip().splitlines())
    return lines + "    return a + b\n"


def _sandbox_processes(runs: Path) -> list[str]:
    """Live processes of this test's sandbox runs: working directory under ``runs`` or (as root) their uids.

    Other test workers may be running sandboxes of their own at the same time; their uids and folders differ.
    """
    uids = sandbox.run_uids()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            uid = entry.stat().st_uid
        except OSError:
            continue
        if cwd.startswith(str(runs)) or uid in uids:
            found.append(f"{entry.name} {cwd} uid={uid}")
    return found


def test_isolation_in_force_is_bubblewrap_where_installed():
    require(sandbox.shutil.which("bwrap") is not None, "bubblewrap (apt-get install bubblewrap)")
    assert sandbox.isolation() == sandbox.BUBBLEWRAP


@pytest.fixture
def runs(monkeypatch):
    """A temporary folder of this test's own for the sandbox's runs (pytest's tmp_path is closed to other uids)."""
    folder = Path(tempfile.mkdtemp(prefix="pts-test-runs-"))
    folder.chmod(0o711)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    shutil.rmtree(folder)


def test_hostile_programs_fail_within_limits_and_harm_nothing(victim, listener, monkeypatch, runs):
    require(sandbox.isolation() == sandbox.BUBBLEWRAP, "bubblewrap isolation")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_that_must_not_leak")
    stray = f"/tmp/pts-hostile-{os.getpid()}"
    hostile = {
        "infinite loop": "while True:\n    pass",
        "sleep past the limit": "import time\ntime.sleep(60)",
        "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "memory hog": "hog = []\nwhile True:\n    hog.append(bytearray(50 << 20))",
        "write outside its dir": f"open('{victim}/new.txt', 'w').write('pwned')",
        "overwrite a file": f"open('{victim}/keep.txt', 'w').write('pwned')",
        "delete files": f"import os\nos.remove('{victim}/delete-me.txt')",
        "write to /tmp": f"open('{stray}', 'w').write('x')",
        "read env secrets": "import os\nassert os.environ['HF_TOKEN'].startswith('hf_')",
        "open a network socket": f"import socket\nsocket.create_connection(('127.0.0.1', {listener}), timeout=1)",
        "print gigabytes": "import sys\nwhile True:\n    sys.stdout.write('x' * (1 << 20))",
    }
    # Right answers, one of which leaves a child behind in a session of its own: it passes, and must not linger.
    good = [_body(f"pass  # good {i}") for i in range(5)]
    good.append(_body("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)"))
    completions = [_body(code) for code in hostile.values()] + good
    oracle = CodeOracle(limits=LIMITS, workers=4)

    start = time.perf_counter()
    verdicts = oracle.judge_many(completions, ADD)
    seconds = time.perf_counter() - start

    outcome = dict(zip(hostile, verdicts))
    assert [name for name, ok in outcome.items() if ok] == [], outcome
    assert verdicts[len(hostile) :] == [True] * len(good)
    # 18 programs, 4 at a time, none longer than its wall limit (plus start-up and a loaded machine's slack).
    assert seconds < (len(completions) / 4 + 1) * (LIMITS.wall_seconds + 2)
    assert oracle.stats()["executions"] == len(completions)

    assert sorted(p.name for p in victim.iterdir()) == ["delete-me.txt", "keep.txt"]
    assert all((victim / n).read_text() == "original\n" for n in ("keep.txt", "delete-me.txt"))
    assert not Path(stray).exists()
    time.sleep(0.2)
    assert _sandbox_processes(runs) == []
    assert list(runs.iterdir()) == []


def test_a_timeout_is_a_failure_within_the_wall_limit():
    execution = Sandbox(Limits(wall_seconds=1.0)).run(["python3", "-c", "import time; time.sleep(30)"], {})
    assert execution.timed_out and not execution.ok and execution.reason == "timeout"
    assert 1.0 <= execution.seconds < 3.0


def test_output_is_capped_and_the_program_stopped():
    limits = Limits(output_bytes=64 << 10)
    execution = Sandbox(limits).run(["python3", "-c", "while True: print('x' * 4096)"], {})
    assert not execution.ok and len(execution.stdout) <= limits.output_bytes
    assert execution.seconds < limits.wall_seconds


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    execution = Sandbox().run(["python3", "-c", "import os; print(' '.join(os.environ))"], {})
    assert execution.ok
    # bubblewrap adds PWD for the directory it starts the program in.
    assert set(execution.stdout.split()) <= {"HOME", "LANG", "PATH", "TMPDIR", "PWD"}


def test_files_are_written_into_a_fresh_directory():
    run = Sandbox().run(["python3", "-I", "main.py"], {"main.py": "import os; print(sorted(os.listdir('.')))"})
    assert run.ok and run.stdout.strip() == "['main.py']"
