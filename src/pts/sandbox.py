"""Run untrusted programs (model output) in a throw-away sandbox.

Each run gets a fresh temporary working directory and, as far as the machine
allows:

- **bubblewrap** (``bwrap``, preferred): new user, PID, network, IPC and UTS
  namespaces, a read-only view of the whole file system except the working
  directory, ``/tmp`` and the home directory empty (and read-only), and the
  sandbox torn down with its parent;
- else **unshare** (util-linux): new user, PID and network namespaces, the
  whole PID namespace killed with its parent; the file system is *not*
  read-only;
- else **rlimits only**: resource limits and a process group killed as a whole.

Always: wall-clock and CPU-time limits, an address-space (memory) limit, a
process limit, a cap on output and file size (``RLIMIT_FSIZE``: the program is
stopped, not the reader flooded), a scrubbed environment (no tokens or keys),
and no core dumps. When pts runs as root, each concurrent run also gets a user
id of its own: root ignores ``RLIMIT_NPROC``, and one uid per run keeps one
program's fork bomb from starving the others. Which isolation is in force is
logged once, the first time a sandbox is used.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pts.errors import PTSError

__all__ = ["Execution", "Limits", "Sandbox", "isolation"]

log = logging.getLogger(__name__)

# The only variables a sandboxed program sees; nothing from pts's own environment leaks in.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
BUBBLEWRAP, UNSHARE, RLIMITS = "bubblewrap", "unshare", "rlimits"

# Uids for sandboxed runs when pts is root: far above any real account, one block per pts process.
_UID_BASE = 1_000_000_000
_UID_SLOTS = 100


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use.

    ``wall_seconds`` bounds real time (the whole process tree is killed then),
    ``cpu_seconds`` CPU time per process, ``memory_bytes`` address space per
    process (None: no limit), ``processes`` the processes and threads the
    program may have at once, ``output_bytes`` the size of its output and of
    any file it writes.
    """

    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_bytes: int | None = 1 << 30
    processes: int = 32
    output_bytes: int = 1 << 20
    open_files: int = 64


@dataclass
class Execution:
    """How one sandboxed run ended: exit status (None if it never ended by itself), output, time."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    isolation: str = RLIMITS

    @property
    def ok(self) -> bool:
        """True when the program exited with status 0 within its limits."""
        return self.returncode == 0 and not self.timed_out

    @property
    def reason(self) -> str:
        """One word or phrase on how it ended: ok, timeout, exit N, or the killing signal's name."""
        if self.timed_out:
            return "timeout"
        if self.returncode is not None and self.returncode < 0:
            return signal.Signals(-self.returncode).name if -self.returncode in signal.valid_signals() else "signal"
        return "ok" if self.returncode == 0 else f"exit {self.returncode}"


class _UidPool:
    """One uid per concurrent run (only used as root); a run waits when all are taken."""

    def __init__(self) -> None:
        self._free = list(range(_UID_SLOTS))
        self._cond = threading.Condition()

    @staticmethod
    def _base() -> int:
        # Read at each call: a forked pts process gets a block of its own.
        return _UID_BASE + (os.getpid() % 1_000_000) * _UID_SLOTS

    def acquire(self) -> int:
        with self._cond:
            while not self._free:
                self._cond.wait()
            return self._base() + self._free.pop()

    def release(self, uid: int) -> None:
        with self._cond:
            self._free.append(uid - self._base())
            self._cond.notify()


_uids = _UidPool()


def run_uids() -> range:
    """The uids this process's sandbox runs take as root (one per concurrent run): where to look for what a run
    left behind."""
    base = _UidPool._base()
    return range(base, base + _UID_SLOTS)


_isolation_lock = threading.Lock()
_isolation: str | None = None


def _is_root() -> bool:
    return os.geteuid() == 0


def _wrapper(kind: str, workdir: Path, program: str | None = None) -> list[str]:
    """The command prefix that puts a program into isolation ``kind``, working in ``workdir``."""
    if kind == BUBBLEWRAP:
        hidden = ["/tmp"]
        home = Path.home()
        # The home directory holds tokens (e.g. ~/.cache/huggingface); hide it unless the program needs it.
        needed = [workdir] + ([Path(program).resolve()] if program else [])
        if str(home) not in ("/", "/tmp") and home.is_dir() and not any(p.is_relative_to(home) for p in needed):
            hidden.append(str(home))
        args = [
            "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
        ]
        # Hidden folders become empty and read-only; the working directory is the one writable place.
        for folder in hidden:
            args += ["--tmpfs", folder]
        args += ["--bind", str(workdir), str(workdir)]
        for folder in hidden:
            args += ["--remount-ro", folder]
        return args + ["--chdir", str(workdir), "--"]
    if kind == UNSHARE:
        return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--"]
    return []


def _limit_args(limits: Limits, kind: str) -> list[str]:
    """``prlimit`` options for ``limits``, applied inside the isolation just before the program starts."""
    args = [
        f"--cpu={limits.cpu_seconds}",
        f"--fsize={limits.output_bytes}",
        "--core=0",
        f"--nofile={limits.open_files}",
    ]
    if limits.memory_bytes is not None:
        args.append(f"--as={limits.memory_bytes}")
    # RLIMIT_NPROC counts all processes of the uid: it bounds one run only in a user namespace of its own
    # or under a uid of its own (root); otherwise it would count the user's whole desktop.
    if kind != RLIMITS or _is_root():
        args.append(f"--nproc={limits.processes}")
    return args


def _probe(kind: str) -> bool:
    """True when ``true`` runs under isolation ``kind`` on this machine."""
    if kind != RLIMITS and shutil.which(kind if kind != BUBBLEWRAP else "bwrap") is None:
        return False
    try:
        execution = Sandbox(Limits(wall_seconds=10), kind).run(["true"], {})
    except OSError:
        return False
    return execution.ok


def isolation() -> str:
    """The strongest isolation that works here: ``bubblewrap``, ``unshare`` or ``rlimits``.

    Probed once per process (a trivial run under each, strongest first) and
    logged: at INFO for bubblewrap, as a WARNING naming what is missing otherwise.
    Raises PTSError when ``prlimit`` is missing.
    """
    global _isolation
    with _isolation_lock:
        if _isolation is None:
            if shutil.which("prlimit") is None:
                raise PTSError("the code sandbox needs `prlimit` (util-linux) to set resource limits")
            _isolation = next(k for k in (BUBBLEWRAP, UNSHARE, RLIMITS) if k == RLIMITS or _probe(k))
            who = "a uid of its own per run" if _is_root() else "the user's own uid"
            if _isolation == BUBBLEWRAP:
                log.info("code sandbox: bubblewrap (read-only file system, no network, own PID namespace), %s", who)
            elif _isolation == UNSHARE:
                log.warning(
                    "code sandbox: bubblewrap not usable (apt-get install bubblewrap); using unshare: "
                    "no network and own PID namespace, but the file system is writable by the program"
                )
            else:
                log.warning(
                    "code sandbox: neither bubblewrap nor unshare usable; only resource limits apply: "
                    "programs can use the network and write wherever %s may%s",
                    who,
                    "" if _is_root() else ", and the process limit is off",
                )
        return _isolation


class Sandbox:
    """Runs commands on untrusted files under ``limits`` and isolation ``kind`` (default: the strongest here).

    Thread-safe: each :meth:`run` has its own directory (and, as root, its own uid).
    """

    def __init__(self, limits: Limits | None = None, kind: str | None = None) -> None:
        self.limits = limits or Limits()
        self.kind = kind

    def run(self, command: Sequence[str], files: Mapping[str, str]) -> Execution:
        """Write ``files`` (name -> text) into a fresh directory and run ``command`` there.

        ``command[0]`` is looked up on the sandbox's PATH. Returns how it ended; a
        timeout or crash is an :class:`Execution` that is not ``ok``. Raises
        OSError only when the process cannot be started at all.
        """
        kind = self.kind or isolation()
        uid = _uids.acquire() if _is_root() else None
        root = Path(tempfile.mkdtemp(prefix="pts-sandbox-"))
        try:
            # The program can pass through root (0711) to its own directory but cannot list or open the output files.
            root.chmod(0o711)
            workdir = root / "work"
            workdir.mkdir()
            for name, text in files.items():
                (workdir / name).write_text(text, encoding="utf-8")
            if uid is not None:
                for path in [workdir, *workdir.iterdir()]:
                    os.chown(path, uid, uid)
            return self._run(kind, command, workdir, root, uid)
        finally:
            if uid is not None:
                _uids.release(uid)
            _remove_tree(root)

    def _run(self, kind: str, command: Sequence[str], workdir: Path, root: Path, uid: int | None) -> Execution:
        limits = self.limits
        program = shutil.which(command[0], path=SANDBOX_PATH) or shutil.which(command[0]) or command[0]
        argv = [*_wrapper(kind, workdir, program), "prlimit", *_limit_args(limits, kind), "--", program, *command[1:]]
        env = {"PATH": SANDBOX_PATH, "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8"}
        ids = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
        out_path, err_path = root / "stdout", root / "stderr"
        start = time.perf_counter()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
                **ids,
            )
        timed_out = not _wait_unreaped(proc.pid, limits.wall_seconds)
        # The whole group goes, also after a normal exit (a child the program left behind must not outlive it),
        # while the unreaped leader still holds the group id, so the id cannot belong to anyone else yet.
        _kill_group(proc.pid)
        proc.wait()
        if kind == RLIMITS and uid is not None:
            _kill_uid(uid)
        seconds = time.perf_counter() - start
        return Execution(
            None if timed_out else proc.returncode,
            _read_capped(out_path, limits.output_bytes),
            _read_capped(err_path, limits.output_bytes),
            seconds,
            timed_out,
            kind,
        )


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for child ``pid`` to exit, leaving it unreaped; True if it exited."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.02)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid``: without namespaces, a program may have left its process group."""
    subprocess.run(
        ["kill", "-KILL", "-1"],
        user=uid,
        group=uid,
        extra_groups=[],
        env={"PATH": SANDBOX_PATH},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def _read_capped(path: Path, limit: int) -> str:
    with path.open("rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _remove_tree(path: Path) -> None:
    """Delete ``path`` even where the program removed permissions from what it made."""

    def allow_and_retry(func, name, exc_info) -> None:
        parent = os.path.dirname(name)
        try:
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, stat.S_IRWXU)
            func(name)
        except OSError as e:
            if e.errno != errno.ENOENT:
                log.debug("could not remove %s: %s", name, e)

    shutil.rmtree(path, onerror=allow_and_retry)
