"""Run untrusted programs (model output) in a throw-away sandbox.

Each run gets, as far as the machine allows:

- **bubblewrap** (``bwrap``, preferred): new user, PID, network, IPC and UTS
  namespaces and a file system of its own that shows only what the
  interpreter needs: ``/usr`` (and the interpreter's prefix when it lives
  elsewhere) read-only, a new ``/proc``, a read-only ``/dev`` of the usual
  devices, and two size-limited tmpfs: the run folder ``/tmp`` (the program's
  files, read-only, in it; its working, home and temporary directory) and
  ``/dev/shm``. Nothing else of the host: no checkout, no home, no ``/etc``,
  no ``/var/tmp``, no Unix sockets. The tmpfs vanish with the namespace, so
  nothing the program writes reaches the host's disk or outlives the run;
- else **unshare** (util-linux): new user, PID, mount and network namespaces,
  the whole PID namespace killed with its parent, private size-limited tmpfs
  on ``/tmp``, ``/var/tmp`` and ``/dev/shm``; the rest of the file system is
  *not* hidden and is writable wherever the user may write;
- else **rlimits only**: resource limits and a process group killed as a whole.

Always: wall-clock and CPU-time limits, an address-space (memory) limit, a
process limit, a cap on output and file size (``RLIMIT_FSIZE``: the program is
stopped, not the reader flooded), a scrubbed environment (no tokens or keys),
and no core dumps. When pts runs as root, each concurrent run also gets a user
id of its own: root ignores ``RLIMIT_NPROC``, and one uid per run keeps one
program's fork bomb from starving the others. Which isolation is in force is
logged once, the first time a sandbox is used, with what it leaves open.

:meth:`Sandbox.run_pair` runs two programs at once, each in a sandbox of its
own, joined only by pipes: the code oracle runs the tests in one and the
candidate program in the other, so the candidate cannot reach the judge.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pts.errors import PTSError

__all__ = ["Execution", "Limits", "Program", "Sandbox", "isolation"]

log = logging.getLogger(__name__)

# The only variables a sandboxed program sees; nothing from pts's own environment leaks in.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
BUBBLEWRAP, UNSHARE, RLIMITS = "bubblewrap", "unshare", "rlimits"
# Under bubblewrap the run folder is the sandbox's /tmp: a tmpfs of its own, gone with the namespace.
RUN_FOLDER = "/tmp"
# The shared places a program can write to when the file system is not its own; cleaned after a run where pts can.
SHARED_TEMP_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")

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
    any file it writes, ``disk_bytes`` what each writable place (the run
    folder, ``/dev/shm``) holds in all: they are RAM-backed tmpfs, outside the
    memory limit.
    """

    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_bytes: int | None = 1 << 30
    processes: int = 32
    output_bytes: int = 1 << 20
    open_files: int = 64
    disk_bytes: int = 64 << 20


@dataclass(frozen=True)
class Program:
    """A command and the files (name -> text) it needs in its run folder."""

    command: Sequence[str]
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Execution:
    """How one sandboxed run ended: exit status (None if it never ended by itself), output, time.

    ``verdict`` is what the program wrote to its verdict pipe (:meth:`Sandbox.run_pair`), else empty.
    """

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    isolation: str = RLIMITS
    verdict: bytes = b""

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


def _prefix(program: str) -> Path | None:
    """The installation prefix of ``program`` when it lies outside /usr (e.g. /opt/node for /opt/node/bin/node)."""
    real = Path(os.path.realpath(program))
    if real.is_relative_to("/usr") or len(real.parents) < 3:
        return None
    return real.parents[1]


def _bubblewrap(workdir: Path, names: Sequence[str], program: str, limits: Limits) -> list[str]:
    """bwrap options that show the program only /usr (and its prefix), its files and two size-limited tmpfs."""
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    # Merged /usr: /bin, /lib... are links into it; otherwise the folders themselves (read-only).
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    prefix = _prefix(program)
    if prefix is not None:
        args += ["--ro-bind", str(prefix), str(prefix)]
    # The dynamic linker's cache: the one file of /etc an interpreter needs to start quickly.
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    args += ["--size", str(limits.disk_bytes), "--tmpfs", "/dev/shm"]
    args += ["--size", str(limits.disk_bytes), "--tmpfs", RUN_FOLDER]
    for name in names:
        args += ["--ro-bind", str(workdir / name), f"{RUN_FOLDER}/{name}"]
    return args + ["--remount-ro", "/", "--chdir", RUN_FOLDER, "--"]


def _unshare(limits: Limits) -> list[str]:
    """unshare options and a shell step: private size-limited tmpfs on the shared temporary folders, the
    program's files copied into the private /tmp (its run folder there), then the program."""
    mounts = [
        f"mount -t tmpfs -o size={limits.disk_bytes},mode=1777 pts {folder}"
        for folder in SHARED_TEMP_FOLDERS
        if Path(folder).is_dir()
    ]
    # The shell starts in the host run folder: still reachable as "." after /tmp is covered.
    step = " && ".join([*mounts, f"cp -R . {RUN_FOLDER}/", f"cd {RUN_FOLDER}", 'exec "$@"'])
    return [
        *("unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child"),
        *("--mount-proc", "--", "sh", "-c", step, "sh"),
    ]


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
    logged: at INFO for bubblewrap, as a WARNING naming what is missing and
    what stays open otherwise. Raises PTSError when ``prlimit`` is missing.
    """
    global _isolation
    with _isolation_lock:
        if _isolation is None:
            if shutil.which("prlimit") is None:
                raise PTSError("the code sandbox needs `prlimit` (util-linux) to set resource limits")
            _isolation = next(k for k in (BUBBLEWRAP, UNSHARE, RLIMITS) if k == RLIMITS or _probe(k))
            who = "a uid of its own per run" if _is_root() else "the user's own uid"
            if _isolation == BUBBLEWRAP:
                log.info(
                    "code sandbox: bubblewrap (only /usr visible, size-limited private /tmp and /dev/shm, "
                    "no network, own PID namespace), %s",
                    who,
                )
            elif _isolation == UNSHARE:
                log.warning(
                    "code sandbox: bubblewrap not usable (apt-get install bubblewrap); using unshare: no network, "
                    "own PID namespace, private /tmp, /var/tmp and /dev/shm, but the rest of the file system "
                    "is visible and writable wherever %s may write",
                    who,
                )
            else:
                log.warning(
                    "code sandbox: neither bubblewrap nor unshare usable; only resource limits apply: programs "
                    "can read the file system, reach the network (127.0.0.1 included) and write wherever %s "
                    "may; %s",
                    who,
                    "what its uid leaves in /tmp, /var/tmp and /dev/shm is removed after each run"
                    if _is_root()
                    else "the process limit is off, and files a program leaves in /tmp, /var/tmp or /dev/shm stay",
                )
        return _isolation


class _Slot:
    """One run's host folder (``root``: outputs; ``root/work``: the program's files) and, as root, its uid."""

    def __init__(self, files: Mapping[str, str], kind: str) -> None:
        self.kind = kind
        self.names = list(files)
        self.proc: subprocess.Popen | None = None
        self.stopped = False
        self.uid = _uids.acquire() if _is_root() else None
        try:
            self.root = Path(tempfile.mkdtemp(prefix="pts-sandbox-"))
        except BaseException:
            if self.uid is not None:
                _uids.release(self.uid)
            raise
        try:
            self._write(files)
        except BaseException:
            self.close()
            raise

    def _write(self, files: Mapping[str, str]) -> None:
        # The program can pass through root (0711) to its files but cannot list or open the output files.
        self.root.chmod(0o711)
        self.workdir = self.root / "work"
        self.workdir.mkdir()
        for name, text in files.items():
            (self.workdir / name).write_text(text, encoding="utf-8")
        if self.kind != BUBBLEWRAP and self.uid is not None:
            # The host run folder is visible to other runs here: its files are its uid's alone (a candidate must
            # not read the tests next to it), and the rlimits mode works in it.
            for path in [self.workdir, *self.workdir.iterdir()]:
                os.chown(path, self.uid, self.uid)
                path.chmod(0o700 if path.is_dir() else 0o600)
        else:
            # Under bubblewrap only this run's sandbox sees them, read-only.
            for path in self.workdir.iterdir():
                path.chmod(0o644)
            self.workdir.chmod(0o755)

    def start(self, command: Sequence[str], limits: Limits, pass_fds: Sequence[int] = ()) -> None:
        if self.uid is not None:
            _adopt_orphans()
        program = shutil.which(command[0], path=SANDBOX_PATH) or shutil.which(command[0]) or command[0]
        if self.kind == BUBBLEWRAP:
            # Run it by its real path: a link through /etc/alternatives would lead nowhere in the sandbox.
            program = os.path.realpath(program)
            wrapper, home = _bubblewrap(self.workdir, self.names, program, limits), RUN_FOLDER
        elif self.kind == UNSHARE:
            wrapper, home = _unshare(limits), RUN_FOLDER
        else:
            wrapper, home = [], str(self.workdir)
        argv = [*wrapper, "prlimit", *_limit_args(limits, self.kind), "--", program, *command[1:]]
        env = {"PATH": SANDBOX_PATH, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8"}
        ids = {"user": self.uid, "group": self.uid, "extra_groups": []} if self.uid is not None else {}
        with (self.root / "stdout").open("wb") as out, (self.root / "stderr").open("wb") as err:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
                **ids,
            )

    def stop(self) -> None:
        """Kill everything the run left (its process group; its uid's processes without namespaces); reap."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        # The whole group goes, also after a normal exit (a child the program left behind must not outlive it),
        # while the unreaped leader still holds the group id, so the id cannot belong to anyone else yet.
        _kill_group(self.proc.pid)
        self.proc.wait()
        if self.kind == RLIMITS and self.uid is not None:
            _kill_uid(self.uid)
        if self.uid is not None:
            # Killed processes take a moment to die and be handed to their reaper: wait for the last of the uid.
            deadline = time.monotonic() + 2.0
            while _reap_orphans(self.uid) and time.monotonic() < deadline:
                time.sleep(0.005)

    def execution(self, limits: Limits, seconds: float, timed_out: bool, verdict: bytes = b"") -> Execution:
        assert self.proc is not None
        return Execution(
            None if timed_out else self.proc.returncode,
            _read_capped(self.root / "stdout", limits.output_bytes),
            _read_capped(self.root / "stderr", limits.output_bytes),
            seconds,
            timed_out,
            self.kind,
            verdict,
        )

    def close(self) -> None:
        try:
            if self.kind == RLIMITS and self.uid is not None:
                _remove_owned_by(self.uid, SHARED_TEMP_FOLDERS)
            _remove_tree(self.root)
        finally:
            if self.uid is not None:
                _uids.release(self.uid)


class Sandbox:
    """Runs commands on untrusted files under ``limits`` and isolation ``kind`` (default: the strongest here).

    Thread-safe: each :meth:`run` has its own folder (and, as root, its own uid).
    """

    def __init__(self, limits: Limits | None = None, kind: str | None = None) -> None:
        self.limits = limits or Limits()
        self.kind = kind

    def run(self, command: Sequence[str], files: Mapping[str, str]) -> Execution:
        """Write ``files`` (name -> text) into a fresh run folder and run ``command`` there.

        ``command[0]`` is looked up on the sandbox's PATH. Returns how it ended; a
        timeout or crash is an :class:`Execution` that is not ``ok``. Raises
        OSError only when the process cannot be started at all.
        """
        slot = _Slot(files, self.kind or isolation())
        try:
            start = time.perf_counter()
            slot.start(command, self.limits)
            timed_out = not _wait_unreaped(slot.proc.pid, self.limits.wall_seconds)
            slot.stop()
            return slot.execution(self.limits, time.perf_counter() - start, timed_out)
        finally:
            try:
                slot.stop()
            finally:
                slot.close()

    def run_pair(self, judge: Program, candidate: Program) -> Execution:
        """Run ``judge`` and ``candidate`` at once, each in a sandbox of its own, joined only by two pipes.

        In each command ``{read}`` and ``{write}`` become the numbers of its ends
        of the pipes (what one writes the other reads); the judge's ``{verdict}``
        is a pipe only it holds, whose content is the returned
        :class:`Execution`'s ``verdict``. The candidate is killed when the judge
        ends (or at the wall-clock limit, which covers both). Returns the judge's
        :class:`Execution`.
        """
        kind = self.kind or isolation()
        slots: list[_Slot] = []
        to_candidate, to_judge, verdict = os.pipe(), os.pipe(), os.pipe()
        unclosed = {*to_candidate, *to_judge, *verdict}
        try:
            judge_slot = _Slot(judge.files, kind)
            slots.append(judge_slot)
            candidate_slot = _Slot(candidate.files, kind)
            slots.append(candidate_slot)
            judge_fds = {"{read}": to_judge[0], "{write}": to_candidate[1], "{verdict}": verdict[1]}
            candidate_fds = {"{read}": to_candidate[0], "{write}": to_judge[1]}
            start = time.perf_counter()
            candidate_slot.start(_fill(candidate.command, candidate_fds), self.limits, list(candidate_fds.values()))
            judge_slot.start(_fill(judge.command, judge_fds), self.limits, list(judge_fds.values()))
            # Only the two programs hold the pipes now: each sees the other's end close when it exits.
            for fd in unclosed - {verdict[0]}:
                os.close(fd)
                unclosed.discard(fd)
            timed_out = not _wait_unreaped(judge_slot.proc.pid, self.limits.wall_seconds)
            for slot in slots:
                slot.stop()
            said = _read_available(verdict[0], 4096)
            return judge_slot.execution(self.limits, time.perf_counter() - start, timed_out, said)
        finally:
            for fd in unclosed:
                os.close(fd)
            for slot in slots:
                try:
                    slot.stop()
                finally:
                    slot.close()


def _fill(command: Sequence[str], fds: Mapping[str, int]) -> list[str]:
    """``command`` with each placeholder in ``fds`` replaced by its file descriptor's number."""
    out = []
    for part in command:
        for placeholder, fd in fds.items():
            part = part.replace(placeholder, str(fd))
        out.append(part)
    return out


def _read_available(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes already written to pipe ``fd``, without waiting for more."""
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < limit:
        try:
            chunk = os.read(fd, limit - size)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


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


_adopting = False


def _adopt_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (Linux PR_SET_CHILD_SUBREAPER), once.

    A program's children that outlive it (and bubblewrap's own inner process) are
    re-parented to the nearest reaper; in a container whose PID 1 reaps nothing
    they would stay as zombies for ever. With pts as their reaper,
    :func:`_reap_orphans` collects them after each run.
    """
    global _adopting
    if _adopting:
        return
    _adopting = True
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap_orphans(uid: int) -> bool:
    """Reap the exited children of this process that ran as ``uid`` (a run's own uid: never another's child).

    Returns True while processes of ``uid`` are still there (alive, or exited and not yet reaped by anyone).
    """
    me, left = str(os.getpid()), False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
            state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
            if state == "Z" and parent == me:
                os.waitpid(int(entry.name), os.WNOHANG)
            elif state != "Z" or parent != "1":
                # Alive, or dead and about to be handed to us; a zombie of PID 1 is older than this process's
                # reaping (another pts process once had this uid) and never comes to us.
                left = True
        except (OSError, ValueError):
            continue
    return left


def _read_capped(path: Path, limit: int) -> str:
    with path.open("rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _remove_owned_by(uid: int, folders: Sequence[str]) -> None:
    """Remove what ``uid`` made directly in ``folders`` (the shared temporary folders a program could write)."""
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                owner = entry.stat(follow_symlinks=False).st_uid
            except OSError:
                continue
            if owner == uid:
                _remove_tree(Path(entry.path))


def _remove_tree(path: Path) -> None:
    """Delete ``path`` however deep it is nested and whatever permissions the program took away.

    ``rm -rf`` walks the tree with file descriptors, not recursion, so a directory
    nested thousands deep (deeper than PATH_MAX, deeper than Python's recursion
    limit) goes too; where it is left with what it cannot enter, permissions are
    given back and it tries once more.
    """
    if not os.path.lexists(path):
        return
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": False}
    subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], **quiet)
    if os.path.lexists(path) and not os.path.islink(path):
        subprocess.run(["chmod", "-R", "u+rwx", "--", str(path)], **quiet)
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], **quiet)
    if os.path.lexists(path):
        log.warning("code sandbox: could not remove %s", path)
