"""What a sandboxed program sees of the host and what it can do there, under each isolation that works here.

Run (about half a minute):

    python bench/sandbox_view.py

For each isolation (bubblewrap, unshare, rlimits only) a set of probe programs
runs through :class:`pts.sandbox.Sandbox` with the default limits; each prints
what it managed. The host side sets up what a probe reaches for (a Unix socket
in /var/tmp with mode 777, a TCP listener on 127.0.0.1) and checks what is left
on the host afterwards (files in /tmp, /var/tmp and /dev/shm; the run folder of
a program that nests 3,000 folders). Prints a Markdown table; ``--json``
writes the results.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

from pts import sandbox
from pts.sandbox import Limits, Sandbox

CHECKOUT = Path(__file__).resolve().parent.parent

# Each probe prints one value; a crash prints nothing (shown as "error").
PROBES = {
    "entries of /": "import os; print(' '.join(sorted(os.listdir('/'))))",
    "reads the checkout": f"import os; print(os.path.exists({str(CHECKOUT / 'pyproject.toml')!r}))",
    "reads /etc/passwd": "import os; print(os.path.exists('/etc/passwd'))",
    "lists /home, /root, /var/tmp": (
        "import os\n"
        "def can(p):\n"
        "    try:\n"
        "        os.listdir(p)\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        "print(any(can(p) for p in ('/home', '/root', '/var/tmp')))"
    ),
    "connects to a Unix socket in /var/tmp": (
        "import socket, sys\n"
        "try:\n"
        "    socket.socket(socket.AF_UNIX).connect(sys.argv[1]); print(True)\n"
        "except OSError:\n"
        "    print(False)"
    ),
    "connects to TCP 127.0.0.1": (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', int(sys.argv[2])), timeout=1); print(True)\n"
        "except OSError:\n"
        "    print(False)"
    ),
}
WRITABLE = (".", "/tmp", "/var/tmp", "/dev/shm", "/dev")
FILL = (
    "import sys\n"
    "written = 0\n"
    "try:\n"
    "    for i in range(1536):\n"
    "        with open(f'{sys.argv[3]}/pts-probe-fill-{i}', 'wb') as f:\n"
    "            f.write(bytes((1 << 20) - 4096))\n"
    "        written += 1\n"
    "except OSError:\n"
    "    pass\n"
    "print(written)"
)
LEAVE = "import sys\nfor d in ('/tmp', '/var/tmp', '/dev/shm'):\n    open(f'{d}/{sys.argv[3]}', 'w').write('x')"
DEEP = "import os\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\nopen('x', 'wb').write(bytes(1 << 20))"


def probe(kind: str, code: str, *args: str, limits: Limits | None = None) -> str:
    execution = Sandbox(limits or Limits(wall_seconds=20, cpu_seconds=20), kind).run(
        ["python3", "-I", "main.py", *args], {"main.py": code}
    )
    return execution.stdout.strip() or f"error ({execution.reason})"


def measure(kind: str) -> dict:
    results = {}
    sock_path = Path("/var/tmp") / f"pts-probe-{os.getpid()}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(sock_path))
    sock_path.chmod(0o777)
    unix.listen()
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    args = [str(sock_path), str(tcp.getsockname()[1])]
    try:
        for name, code in PROBES.items():
            results[name] = probe(kind, code, *args, "-")
    finally:
        unix.close()
        sock_path.unlink()
        tcp.close()
    for where in WRITABLE:
        results[f"MiB written to {where}"] = probe(kind, FILL, *args, where)
        # What a probe could not write in its own folder stays on the host where the file system is shared.
        for folder in ("/tmp", "/var/tmp", "/dev/shm", "/dev"):
            for leftover in Path(folder).glob("pts-probe-fill-*"):
                leftover.unlink()
    name = f"pts-probe-left-{os.getpid()}"
    probe(kind, LEAVE, *args, name)
    results["files left in /tmp, /var/tmp, /dev/shm"] = sum(
        Path(d, name).exists() for d in ("/tmp", "/var/tmp", "/dev/shm")
    )
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        Path(d, name).unlink(missing_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="pts-probe-runs-"))
    runs.chmod(0o711)
    tempfile.tempdir = str(runs)
    try:
        probe(kind, DEEP, *args, "-")
        results["run folders left after 3,000 nested folders"] = len(list(runs.iterdir()))
    finally:
        tempfile.tempdir = None
        os.system(f"rm -rf {runs}")
    times = []
    for _ in range(20):
        start = time.perf_counter()
        Sandbox(kind=kind).run(["python3", "-I", "main.py"], {"main.py": "pass"})
        times.append((time.perf_counter() - start) * 1000)
    results["median ms per trivial run"] = round(statistics.median(times), 1)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--isolations", default="bubblewrap,unshare,rlimits")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    table = {}
    for kind in args.isolations.split(","):
        if not sandbox._probe(kind):
            print(f"{kind}: does not work here, skipped")
            continue
        table[kind] = measure(kind)
    kinds = list(table)
    print(f"| probe (as uid {os.geteuid()}) | " + " | ".join(kinds) + " |")
    print("| --- |" + " --- |" * len(kinds))
    for row in next(iter(table.values())):
        print(f"| {row} | " + " | ".join(str(table[k][row]) for k in kinds) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
