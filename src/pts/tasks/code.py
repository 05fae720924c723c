"""The code oracle: run the program in a completion against the task's tests, in a sandbox.

A completion holds code in one of two shapes:

- **fenced** (chat models): the first fenced block (three backticks, an
  optional language tag, the code, a closing fence) is the program, or the
  function's body when it does not define the function itself;
- **raw** (base models continuing the prompt's function header, as HumanEval
  expects): the completion up to the end of the function (the first closing
  fence, or the language's end-of-function line) is appended to the header.

A Python task with a function under test is judged across a process
boundary: the candidate's program runs in one sandbox and the task's tests in
another (:mod:`pts.tasks.code_bridge`), the tests calling the candidate's
function through a pipe and comparing the values it returns as plain data, and
only the tests' process can report success. Nothing the program does in its
own process (an object equal to everything, ``sys.settrace``, rewriting its
file, printing a marker, exiting early) reaches that verdict.

Other tasks (JavaScript, a task without an entry point) run the program, the
tests and a line that prints a random marker in one sandboxed process: success
means exit status 0 *and* the marker printed, so a program that exits early
with status 0 fails, but a program written to defeat the judge can forge it.
Verdicts are cached by program text, since rollouts repeat each other often,
and executions run in a bounded pool.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pts.errors import PTSError
from pts.sandbox import SANDBOX_PATH, Execution, Limits, Program, Sandbox
from pts.tasks.oracles.extract import final_answer_text
from pts.tasks.task import Oracle

__all__ = ["LANGUAGES", "CodeOracle", "CodeReference", "Language", "split_code"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Language:
    """How to run and read programs in one language.

    ``command`` runs a program file (``{file}`` is replaced by its name);
    ``suffix`` is that file's extension; ``fences`` are the tags of a fenced
    block in this language; ``pass_line`` prints ``{marker}`` (appended after the
    tests); ``definition`` is a regex (``{name}`` is the function's name) that
    finds a whole function in a fenced block; ``function_end`` is a multi-line
    regex whose match ends a raw completion's function (the match is kept);
    ``header_is_complete`` says the prompt's header is valid code by itself (a
    Python function whose body is its docstring), so a whole function may follow it;
    ``bridged`` says the tests run in a sandbox apart from the program, calling its
    function through :mod:`pts.tasks.code_bridge` (Python only).
    """

    name: str
    command: tuple[str, ...]
    suffix: str
    fences: tuple[str, ...]
    pass_line: str
    definition: str
    function_end: str
    header_is_complete: bool = False
    bridged: bool = False


PYTHON = Language(
    name="python",
    command=("python3", "-I", "{file}"),  # -I: no PYTHON* variables, no user site, no script directory
    suffix=".py",
    fences=("python", "py", "python3"),
    pass_line='\nprint("{marker}")\n',
    definition=r"^[ \t]*(?:async[ \t]+)?def[ \t]+{name}[ \t]*\(",
    # An indented line, blank lines, then a line starting at column 0: the function has ended before it.
    function_end=r"^[ \t]+\S[^\n]*\n(?:[ \t]*\n)*(?=\S)",
    header_is_complete=True,
    bridged=True,
)
JAVASCRIPT = Language(
    name="javascript",
    command=("node", "{file}"),
    suffix=".js",
    fences=("javascript", "js", "node"),
    pass_line='\nconsole.log("{marker}");\n',
    definition=r"(?:\bfunction[ \t]+{name}\b|\b(?:const|let|var)[ \t]+{name}[ \t]*=)",
    # A closing brace at column 0 closes the function the header opened.
    function_end=r"^\}[^\n]*",
)
LANGUAGES: dict[str, Language] = {lang.name: lang for lang in (PYTHON, JAVASCRIPT)}

# Copied into both sandboxes of a bridged run; read once.
_BRIDGE_SOURCE = (Path(__file__).with_name("code_bridge.py")).read_text(encoding="utf-8")

_FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)
_INDENTED_RE = re.compile(r"^[ \t]+\S", re.MULTILINE)


@dataclass(frozen=True)
class CodeReference:
    """What the code oracle needs of a task: the prompt's ``header`` (code a raw
    completion continues; may be empty), the ``tests`` (code that fails, e.g. by a
    failed assertion, unless the program is right) and the ``entry_point`` (the
    function under test, or None)."""

    header: str
    tests: str
    entry_point: str | None = None


def split_code(completion: str, language: Language) -> tuple[str, bool, bool]:
    """The code in ``completion`` as ``(code, fenced, complete)``.

    A fence line before any indented line opens a fenced block: its content is
    the code, complete once the closing fence is written. Otherwise the text is
    a raw continuation: it ends at the first fence line (a closing one) or at the
    language's end of function, and is complete once either is written.
    """
    opening = _FENCE_RE.search(completion)
    indented = _INDENTED_RE.search(completion)
    if opening and (indented is None or opening.start() < indented.start()):
        start = opening.end() + 1
        if start > len(completion):
            return "", True, False
        close = re.compile(r"^[ \t]*" + re.escape(opening.group(1)[0]) + "{3,}", re.MULTILINE)
        end = close.search(completion, start)
        return completion[start : end.start() if end else len(completion)], True, end is not None
    cut, complete = len(completion), False
    if opening:
        cut, complete = opening.start(), True
    end = re.search(language.function_end, completion, re.MULTILINE)
    if end and end.end() < cut:
        cut, complete = end.end(), True
    return completion[:cut], False, complete


class CodeOracle(Oracle):
    """Judges a completion by running its program with the task's tests (a :class:`CodeReference`).

    ``language`` is a :class:`Language` or a name in :data:`LANGUAGES`;
    ``limits`` bounds each run (:class:`~pts.sandbox.Limits`); at most
    ``workers`` programs run at once (default: the number of cores). Verdicts are
    cached by program text (``cache_size`` most recent); :meth:`stats` reports
    the cache's hit rate. Safe to share between threads and tasks.
    """

    def __init__(
        self,
        language: Language | str = "python",
        *,
        limits: Limits | None = None,
        workers: int | None = None,
        cache_size: int = 1 << 20,
    ) -> None:
        if isinstance(language, str):
            if language not in LANGUAGES:
                raise PTSError(f"unknown code language {language!r}; known: {', '.join(LANGUAGES)}")
            language = LANGUAGES[language]
        self.language = language
        self.name = "code" if language.name == "python" else f"code:{language.name}"
        self.sandbox = Sandbox(limits)
        self.workers = workers or os.cpu_count() or 1
        self.cache_size = cache_size
        self._start()

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.workers)
        self._pool: ThreadPoolExecutor | None = None
        self._verdicts: OrderedDict[bytes, Future] = OrderedDict()
        self._counts = {"judged": 0, "cache_hits": 0, "executions": 0, "timeouts": 0, "errors": 0}
        self._execution_seconds = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Locks, threads and cached futures stay with the process that made them.
        keep = ("language", "name", "sandbox", "workers", "cache_size")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start()

    def __repr__(self) -> str:
        return f"CodeOracle({self.language.name!r}, workers={self.workers})"

    def check(self) -> None:
        """Raise PTSError unless this language's command runs in the sandbox (e.g. ``node`` is missing)."""
        command = self.language.command[0]
        if shutil.which(command, path=SANDBOX_PATH) is None and shutil.which(command) is None:
            raise PTSError(f"the {self.language.name} code oracle runs `{command}`, which is not installed")
        marker = secrets.token_hex(8)
        execution = self._run(self.language.pass_line.format(marker=marker))
        if not (execution.ok and marker in execution.stdout):
            detail = (execution.stderr.strip().splitlines() or [execution.reason])[-1]
            raise PTSError(
                f"the {self.language.name} code oracle cannot run "
                f"`{' '.join(self.language.command)}` in its sandbox: {detail}"
            )
        if self.language.bridged:
            # The judge and candidate sandboxes must reach a verdict too, or every rollout would fail silently.
            trivial = CodeReference("def answer():\n    pass\n", "assert answer() == 42\n", "answer")
            execution = self._run_bridged("def answer():\n    return 42\n", trivial)
            if not (execution.ok and execution.verdict == b"passed\n"):
                detail = (execution.stderr.strip().splitlines() or [execution.reason])[-1]
                raise PTSError(f"the {self.language.name} code oracle cannot judge a program in its sandbox: {detail}")

    def candidate(self, completion: str, reference: CodeReference) -> str:
        """The program a completion stands for: the header (where it belongs) and the completion's code."""
        answer = final_answer_text(completion) or ""
        code, fenced, _ = split_code(answer, self.language)
        header = reference.header
        if fenced and reference.entry_point and self._defines(code, reference.entry_point):
            # A whole function: the header's imports and helpers stay where the language allows it.
            header = header + "\n" if self.language.header_is_complete else ""
        return f"{header}{code}"

    def program(self, completion: str, reference: CodeReference) -> str:
        """The program a completion stands for, with the task's tests after it (without the pass marker)."""
        return f"{self.candidate(completion, reference)}\n\n{reference.tests}\n"

    def _defines(self, code: str, name: str) -> bool:
        return re.search(self.language.definition.format(name=re.escape(name)), code, re.MULTILINE) is not None

    def judge(self, completion: str, reference: Any) -> bool:
        if not isinstance(reference, CodeReference):
            return False
        program = self.program(completion, reference)
        key = hashlib.sha256(f"{self.language.name}\0{program}".encode()).digest()
        with self._lock:
            self._counts["judged"] += 1
            verdict = self._verdicts.get(key)
            owner = verdict is None
            if owner:
                verdict = self._verdicts[key] = Future()
                while len(self._verdicts) > self.cache_size:
                    self._verdicts.popitem(last=False)
            else:
                self._counts["cache_hits"] += 1
                self._verdicts.move_to_end(key)
        if owner:
            verdict.set_result(self._verdict(completion, reference, program, key))
        return verdict.result()

    def _verdict(self, completion: str, reference: CodeReference, program: str, key: bytes) -> bool:
        marker = secrets.token_hex(16)
        try:
            if self.language.bridged and reference.entry_point:
                execution = self._run_bridged(self.candidate(completion, reference), reference)
            else:
                execution = self._run(program + self.language.pass_line.format(marker=marker))
        except Exception as e:  # the sandbox could not start (e.g. no processes left): a failure, not cached
            log.warning("code oracle: could not run a program (%s: %s); judged as failed", type(e).__name__, e)
            with self._lock:
                self._counts["errors"] += 1
                self._verdicts.pop(key, None)
            return False
        with self._lock:
            self._counts["executions"] += 1
            self._counts["timeouts"] += execution.timed_out
            self._execution_seconds += execution.seconds
        if self.language.bridged and reference.entry_point:
            return execution.ok and execution.verdict == b"passed\n"
        return execution.ok and marker in execution.stdout

    def _run_bridged(self, candidate: str, reference: CodeReference) -> Execution:
        """The tests in one sandbox, the candidate in another, joined by pipes (:mod:`pts.tasks.code_bridge`)."""
        python = self.language.command[:-1]  # the interpreter and its options, without "{file}"
        bridge = "code_bridge.py"
        judge = Program(
            [*python, bridge, "judge", "header.py", "tests.py", str(reference.entry_point), "{read}", "{write}"]
            + ["{verdict}"],
            {bridge: _BRIDGE_SOURCE, "header.py": reference.header, "tests.py": reference.tests},
        )
        program = Program(
            [*python, bridge, "candidate", "main.py", "{read}", "{write}"],
            {bridge: _BRIDGE_SOURCE, "main.py": candidate},
        )
        with self._slots:
            return self.sandbox.run_pair(judge, program)

    def _run(self, source: str) -> Execution:
        name = "main" + self.language.suffix
        command = [part.replace("{file}", name) for part in self.language.command]
        with self._slots:
            return self.sandbox.run(command, {name: source})

    def judge_many(self, completions: Sequence[str], reference: Any) -> list[bool]:
        """Verdicts for many completions of one task, in order, run up to ``workers`` at a time."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pts-code")
        return list(self._pool.map(lambda c: self.judge(c, reference), completions))

    def answer_complete(self, completion: str) -> bool:
        """True once the function is written: its block's closing fence, or the end of a raw function."""
        answer = final_answer_text(completion)
        return answer is not None and split_code(answer, self.language)[2]

    def stats(self) -> dict[str, float]:
        """Counts so far: judged, cache_hits, executions, timeouts, errors, hit_rate, execution_seconds."""
        with self._lock:
            counts: dict[str, float] = dict(self._counts)
            counts["hit_rate"] = counts["cache_hits"] / counts["judged"] if counts["judged"] else 0.0
            counts["execution_seconds"] = self._execution_seconds
            return counts
