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
        "read env secrets": "import os\nassert os.environ['HF_TOKEN'].startswith('hf_')",
        "open a network socket": f"import socket\nsocket.create_connection(('127.0.0.1', {listener}), timeout=1)",
        "print gigabytes": "import sys\nwhile True:\n    sys.stdout.write('x' * (1 << 20))",
    }
    # Right answers, one of which leaves a child behind in a session of its own: it passes, and must not linger.
    good = [_body(f"pass  # good {i}") for i in range(5)]
    good.append(_body("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)"))
    # The sandbox's /tmp is its own run folder: writing there works and reaches nothing of the host's /tmp.
    good.append(_body(f"open('{stray}', 'w').write('x')"))
    completions = [_body(code) for code in hostile.values()] + good
    oracle = CodeOracle(limits=LIMITS, workers=4)

    start = time.perf_counter()
    verdicts = oracle.judge_many(completions, ADD)
    seconds = time.perf_counter() - start

    outcome = dict(zip(hostile, verdicts))
    assert [name for name, ok in outcome.items() if ok] == [], outcome
    assert verdicts[len(hostile) :] == [True] * len(good)
    # 17 programs, 4 at a time, none longer than its wall limit (plus start-up and a loaded machine's slack).
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


# --- What the program sees of the host, where it can write, and what it can forge --------------------------------

CHECKOUT = Path(__file__).resolve().parent.parent


@pytest.fixture
def unix_socket():
    """A Unix socket server in /var/tmp, mode 777: a program that can see it could connect."""
    path = Path("/var/tmp") / f"pts-socket-{os.getpid()}-{time.monotonic_ns()}"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    path.chmod(0o777)
    server.listen()
    yield path
    server.close()
    path.unlink()


def test_hostile_programs_see_nothing_of_the_host(unix_socket, runs):
    require(sandbox.isolation() == sandbox.BUBBLEWRAP, "bubblewrap isolation")
    hostile = {
        "read the checkout": f"open('{CHECKOUT / 'pyproject.toml'}').read()",
        "read its .git": f"open('{CHECKOUT / '.git'}').read()",
        "list the checkout": f"import os\nassert os.listdir('{CHECKOUT}')",
        "read /etc/passwd": "open('/etc/passwd').read()",
        "list /var/tmp": "import os\nassert os.listdir('/var/tmp')",
        "list /home": "import os\nassert os.listdir('/home')",
        "list /proc/1/root/home": "import os\nassert os.listdir('/proc/1/root/home')",
        "connect to a Unix socket": f"import socket\nsocket.socket(socket.AF_UNIX).connect('{unix_socket}')",
    }
    completions = [_body(code) for code in hostile.values()]
    verdicts = CodeOracle(limits=LIMITS, workers=4).judge_many(completions, ADD)
    assert [name for name, ok in zip(hostile, verdicts) if ok] == []


def test_the_program_sees_only_the_interpreter_and_its_run_folder():
    probe = "import os, sys\nprint(sorted(os.listdir('/')))\nprint(sorted(os.listdir('.')), os.getcwd(), sys.prefix)\n"
    execution = Sandbox(kind=sandbox.BUBBLEWRAP).run(["python3", "-I", "main.py"], {"main.py": probe})
    require(execution.isolation == sandbox.BUBBLEWRAP and execution.ok, "bubblewrap isolation")
    top, here = execution.stdout.splitlines()
    assert set(eval(top)) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp"}
    assert here.startswith("['main.py'] /tmp ")


def _writes(folder: str, mib: int) -> str:
    """Code that writes ``mib`` MiB into ``folder`` in files just under 1 MiB (each under the per-file limit)."""
    return (
        f"for i in range({mib}):\n"
        f"    with open('{folder}/pts-fill-%d' % i, 'wb') as f:\n"
        "        f.write(bytes((1 << 20) - 4096))"
    )


def test_every_writable_place_is_size_limited(runs):
    require(sandbox.isolation() == sandbox.BUBBLEWRAP, "bubblewrap isolation")
    limits = Limits(wall_seconds=5.0, memory_bytes=512 << 20, disk_bytes=32 << 20)
    # 256 MiB each: more than the 32 MiB each place may hold, far less than it would take to hurt the machine.
    hostile = {where: _writes(where, 256) for where in (".", "/tmp", "/dev/shm", "/dev")}
    good = [_writes(".", 8), _writes("/dev/shm", 8)]
    oracle = CodeOracle(limits=limits, workers=2)
    verdicts = oracle.judge_many([_body(code) for code in [*hostile.values(), *good]], ADD)
    assert dict(zip(hostile, verdicts)) == dict.fromkeys(hostile, False)
    assert verdicts[len(hostile) :] == [True, True]
    assert list(runs.iterdir()) == []


DEEP = (
    "import os\n"
    "for _ in range(3000):\n"
    "    os.mkdir('d')\n"
    "    os.chdir('d')\n"
    "with open('data', 'wb') as f:\n"
    "    f.write(bytes(1 << 19))\n"
    "os.chmod('.', 0o500)"
)


@pytest.mark.parametrize("kind", [sandbox.BUBBLEWRAP, sandbox.UNSHARE, sandbox.RLIMITS])
def test_a_deeply_nested_folder_leaves_nothing_behind(kind, runs):
    if not sandbox._probe(kind):
        pytest.skip(f"{kind} isolation does not work here")
    oracle = CodeOracle(limits=LIMITS, workers=1)
    oracle.sandbox = Sandbox(LIMITS, kind)
    # A right answer that leaves 3,000 nested folders in its run folder: still a pass, and the folder goes.
    assert oracle.judge(_body(DEEP), ADD)
    assert oracle.stats()["errors"] == 0
    assert list(runs.iterdir()) == []


FORGERIES = {
    "an object equal to everything": (
        "```python\ndef add(a, b):\n    class Anything:\n        def __eq__(self, other):\n            return True\n"
        "    return Anything()\n```"
    ),
    "an int subclass equal to everything": (
        "```python\nclass Int(int):\n    def __eq__(self, other):\n        return True\n\n"
        "def add(a, b):\n    return Int(0)\n```"
    ),
    "print the marker read from its own file": (
        "```python\nimport os\n\ndef add(a, b):\n    return a - b\n\n"
        "print([l for l in open(__file__).read().splitlines() if l.startswith('print(')][-1][7:-2], flush=True)\n"
        "os._exit(0)\n```"
    ),
    "rewrite its own file and run it again": (
        "```python\nimport os, sys\n\ndef add(a, b):\n    return a - b\n\n"
        "source = open(__file__).read()\n"
        "if not source.startswith('# again'):\n"
        "    marker = [l for l in source.splitlines() if l.startswith('print(')][-1]\n"
        "    open(__file__, 'w').write('# again\\n' + marker + '\\n')\n"
        "    os.execv(sys.executable, [sys.executable, __file__])\n```"
    ),
    "sys.settrace over the tests to the marker line": (
        "```python\nimport sys\n\ndef add(a, b):\n    return a - b\n\n"
        "_lines = open(__file__).read().splitlines()\n\n"
        "def _skip(frame, event, arg):\n"
        "    if event == 'line' and _lines[frame.f_lineno - 1].startswith(('assert', 'check(')):\n"
        "        frame.f_lineno = len(_lines)\n"
        "    return _skip\n\n"
        "sys.settrace(lambda *args: None)\n"
        "sys._getframe().f_trace = _skip\n```"
    ),
}


def test_success_cannot_be_forged_from_inside_the_program(runs):
    require(sandbox.isolation() == sandbox.BUBBLEWRAP, "bubblewrap isolation")
    oracle = CodeOracle(limits=LIMITS, workers=4)
    right = "```python\ndef add(a, b):\n    return a + b\n```"
    verdicts = oracle.judge_many([*FORGERIES.values(), right], ADD)
    assert dict(zip(FORGERIES, verdicts)) == dict.fromkeys(FORGERIES, False)
    assert verdicts[-1] is True
    assert list(runs.iterdir()) == []


@pytest.mark.parametrize("kind", [sandbox.UNSHARE, sandbox.RLIMITS])
def test_fallback_modes_clean_the_shared_temporary_folders(kind, runs):
    if not sandbox._probe(kind):
        pytest.skip(f"{kind} isolation does not work here")
    if kind == sandbox.RLIMITS and os.geteuid() != 0:
        pytest.skip("without namespaces or a uid of its own, a run's files cannot be told from the user's")
    name = f"pts-left-{os.getpid()}-{time.monotonic_ns()}"
    leave = "\n".join(f"open('{folder}/{name}', 'w').write('x')" for folder in sandbox.SHARED_TEMP_FOLDERS)
    oracle = CodeOracle(limits=LIMITS, workers=1)
    oracle.sandbox = Sandbox(LIMITS, kind)
    assert oracle.judge(_body(leave), ADD)
    assert [f for f in sandbox.SHARED_TEMP_FOLDERS if Path(f, name).exists()] == []
    assert list(runs.iterdir()) == []


def test_a_fallback_mode_says_what_it_leaves_open(monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "_isolation", None)
    monkeypatch.setattr(sandbox, "_probe", lambda kind: False)
    with caplog.at_level("WARNING", logger="pts.sandbox"):
        assert sandbox.isolation() == sandbox.RLIMITS
    said = caplog.text
    assert "network (127.0.0.1 included)" in said and "/var/tmp" in said and "/dev/shm" in said


ORPHANS = (
    "import os, time\n"
    "for _ in range(3):\n"
    "    if os.fork() == 0:\n"
    "        os.setsid()\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(60)\n"
    "        os._exit(0)\n"
    "time.sleep(0.2)"
)


@pytest.mark.parametrize("kind", [sandbox.BUBBLEWRAP, sandbox.UNSHARE, sandbox.RLIMITS])
def test_no_process_or_zombie_outlives_a_run(kind, runs):
    if not sandbox._probe(kind):
        pytest.skip(f"{kind} isolation does not work here")
    if os.geteuid() != 0:
        pytest.skip("orphans are told apart (and reaped) by the run's own uid, which pts has only as root")
    oracle = CodeOracle(limits=LIMITS, workers=1)
    oracle.sandbox = Sandbox(LIMITS, kind)
    # Orphans in sessions of their own, killed at the end: in a container whose PID 1 reaps nothing they would
    # stay as zombies unless pts reaps them.
    assert oracle.judge(_body(ORPHANS), ADD)
    assert _sandbox_processes(runs) == []
    uids = range(sandbox._uids._base(), sandbox._uids._base() + sandbox._UID_SLOTS)
    zombies = []
    for entry in Path("/proc").iterdir():
        try:
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            if entry.stat().st_uid in uids:
                zombies.append(f"{entry.name} {state}")
        except (OSError, IndexError):
            continue
    assert zombies == []


@pytest.mark.parametrize("kind", [sandbox.BUBBLEWRAP, sandbox.UNSHARE, sandbox.RLIMITS])
def test_the_candidate_cannot_read_the_tests(kind, runs):
    if not sandbox._probe(kind):
        pytest.skip(f"{kind} isolation does not work here")
    if kind != sandbox.BUBBLEWRAP and os.geteuid() != 0:
        pytest.skip("without a file system of its own, the candidate shares the judge's uid and its files")
    # The judge's folder lies next to the candidate's in the host's temporary folder (listable, as /tmp is); its
    # tests hold the answers.
    runs.chmod(0o755)
    peek = f"import glob\nassert [open(t).read() for t in glob.glob('{runs}/pts-sandbox-*/work/tests.py')]"
    oracle = CodeOracle(limits=LIMITS, workers=1)
    oracle.sandbox = Sandbox(LIMITS, kind)
    assert oracle.judge(_body("pass"), ADD)
    assert not oracle.judge(_body(peek), ADD)
