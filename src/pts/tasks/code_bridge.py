"""The two halves of a Python code test, each run in a sandbox of its own and joined only by pipes.

This file is not imported by pts: the code oracle copies it into both
sandboxes and runs it there with the system's ``python3`` (standard library
only).

- ``python3 -I code_bridge.py candidate PROGRAM READ WRITE`` runs the
  candidate's program (the header and the model's code, no tests) once, then
  answers calls: each request names a function and its arguments, and the
  reply is the returned value (and the arguments as they are afterwards).
- ``python3 -I code_bridge.py judge HEADER TESTS ENTRY READ WRITE VERDICT``
  runs the task's header and tests with ``ENTRY`` bound to a stand-in that
  forwards each call to the candidate; when every test passed it writes
  ``passed`` to the VERDICT pipe, which only it holds.

Values cross as plain data (None, bool, int, float, complex, str, bytes and
lists, tuples, dicts, sets, frozensets of them), checked by exact type and
rebuilt on the judge's side: the tests compare real built-in values, so an
object whose ``__eq__`` is always true, a patched ``sys.settrace``, a rewritten
file or a printed marker in the candidate's process change nothing in the
judge's.
"""

from __future__ import annotations

import builtins
import json
import os
import sys

MAX_DEPTH = 200
MAX_LINE = 64 << 20


def encode(value, depth: int = 0):
    """``value`` as JSON-ready plain data, tagged by type; TypeError for anything else."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if depth > MAX_DEPTH:
        raise TypeError("a value nested too deeply")
    if kind is float:
        return {"f": repr(value)}
    if kind is complex:
        return {"c": [repr(value.real), repr(value.imag)]}
    if kind is bytes:
        return {"b": value.hex()}
    tags = {list: "l", tuple: "t", set: "s", frozenset: "fs"}
    if kind in tags:
        return {tags[kind]: [encode(item, depth + 1) for item in value]}
    if kind is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    raise TypeError(f"a {kind.__name__} is not plain data (None, bool, int, float, str, bytes, containers of them)")


def decode(data):
    """The plain value that :func:`encode` gave ``data`` for; ValueError for anything it cannot have given."""
    if data is None or type(data) in (bool, int, str):
        return data
    if type(data) is not dict or len(data) != 1:
        raise ValueError("not an encoded value")
    ((tag, body),) = data.items()
    if tag == "f":
        return float(body)
    if tag == "c":
        return complex(float(body[0]), float(body[1]))
    if tag == "b":
        return bytes.fromhex(body)
    if type(body) is not list:
        raise ValueError("not an encoded value")
    if tag == "d":
        return {decode(k): decode(v) for k, v in body}
    containers = {"l": list, "t": tuple, "s": set, "fs": frozenset}
    if tag not in containers:
        raise ValueError(f"unknown tag {tag!r}")
    return containers[tag](decode(item) for item in body)


def _send(stream, message: dict) -> None:
    stream.write(json.dumps(message).encode() + b"\n")
    stream.flush()


def _receive(stream) -> dict | None:
    line = stream.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise ValueError("a message too long")
    return json.loads(line)


def candidate(program: str, read_fd: int, write_fd: int) -> None:
    """Run ``program`` once, then answer the judge's calls until it closes the pipe."""
    requests, replies = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    _run_file(program, namespace)
    while (request := _receive(requests)) is not None:
        try:
            args, kwargs = decode(request["args"]), decode(request["kwargs"])
            value = namespace[request["name"]](*args, **kwargs)
            reply = {"value": encode(value), "args": encode(args)}
        except BaseException as e:  # the judge raises it in the tests, where it fails them
            try:
                reply = {"raised": type(e).__name__, "message": str(e)[:2000]}
            except BaseException:
                reply = {"raised": "Exception", "message": ""}
        _send(replies, reply)


def _stand_in(name: str, requests, replies):
    """A function that forwards each call of ``name`` to the candidate and returns its value."""

    def call(*args, **kwargs):
        _send(requests, {"name": name, "args": encode(args), "kwargs": encode(kwargs)})
        reply = _receive(replies)
        if reply is None:
            raise RuntimeError("the candidate program ended")
        if "raised" in reply:
            kind = getattr(builtins, str(reply["raised"]), None)
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                kind = RuntimeError
            raise kind(str(reply.get("message", "")))
        # A call may change its (mutable) arguments: the tests see those changes on their own objects.
        for before, after in zip(args, decode(reply["args"])):
            if type(before) is list and type(after) is list:
                before[:] = after
            elif type(before) in (dict, set) and type(before) is type(after):
                before.clear()
                before.update(after)
        return decode(reply["value"])

    call.__name__ = call.__qualname__ = name
    return call


def judge(header: str, tests: str, entry_point: str, read_fd: int, write_fd: int, verdict_fd: int) -> None:
    """Run the tests against the candidate's ``entry_point``; write ``passed`` to ``verdict_fd`` if all pass."""
    _undumpable()
    replies, requests = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    _run_header(header, namespace)
    # The header defines the function the candidate writes (HumanEval's has only its docstring): the tests
    # call the candidate's instead, in the candidate's process.
    namespace[entry_point] = _stand_in(entry_point, requests, replies)
    _run_file(tests, namespace)
    os.write(verdict_fd, b"passed\n")


def _run_file(path: str, namespace: dict) -> None:
    with open(path, encoding="utf-8") as f:
        exec(compile(f.read(), path, "exec"), namespace)


def _run_header(path: str, namespace: dict) -> None:
    """Run the task's header for its imports and helpers; one that stops at a bare ``def f():`` line (the
    completion writes the body) gets a ``pass`` body, and one that still is not valid code is left out."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    for attempt in (source, source.rstrip("\n") + "\n    pass\n"):
        try:
            code = compile(attempt, path, "exec")
        except SyntaxError:
            continue
        exec(code, namespace)
        return


def _undumpable() -> None:
    """Make this process impossible to trace or read through /proc for processes of the same uid without
    privileges (the candidate, where isolation shares a uid)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError, ImportError):
        pass


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "candidate":
        candidate(rest[0], int(rest[1]), int(rest[2]))
    elif role == "judge":
        judge(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]), int(rest[5]))
    else:
        sys.exit(f"unknown role {role!r}")
