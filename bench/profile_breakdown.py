"""Where the wall time of a ``pts run`` goes, from a py-spy profile of it.

Record (py-spy samples every Python thread, idle ones too, without pausing the run):

    py-spy record --idle --threads --nonblocking --subprocesses --format raw -r 20 -o prof.txt -- pts run ...
    python bench/profile_breakdown.py prof.txt --rate 20

Each sample is one thread's stack at one tick. A stack is put in the first category that matches, reading
from the innermost frame outwards (so the oracle's stop test inside the engine counts as the stop test, and a
tokenizer decode inside judging counts as decoding). The engine runs in one thread at a time (merged calls),
so "engine" samples over the main thread's samples is the share of wall time the engine was running; the rest
of the wall time is the gaps between engine calls, where the search's Python work (judging, the evidence
trie, request building, decoding) runs under the GIL while the engine waits.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

# (category, pattern on one frame "function (file:line)"), tried for each frame from the innermost outwards.
RULES: list[tuple[str, re.Pattern]] = [
    ("stop test (oracle, inside engine)", re.compile(r"answer_complete|_stop_test|<lambda> \(.*search/estimate\.py")),
    ("engine: decoding text", re.compile(r"_decode \(.*engines/hf\.py")),
    ("engine: forward + sampling", re.compile(r"engines/(hf|vllm|baseline)\.py")),
    ("decoding text (search)", re.compile(r"response_text \(|_decode_|decode \(.*search/")),
    ("judging (oracle)", re.compile(r"judge_many|judge \(|tasks/oracles/|math_verify|reasoning_gym")),
    ("request building", re.compile(r"request \(.*search/estimate\.py|stable_seed|_requests? \(")),
    ("evidence trie", re.compile(r"search/evidence\.py")),
    ("verification", re.compile(r"search/verify\.py")),
    ("search, other", re.compile(r"pts/search/")),
    ("waiting for merged call / quiet point", re.compile(r"engines/coalesce\.py")),
    ("writing records", re.compile(r"pts/store\.py|pts/records\.py|pts/jobs/")),
    ("model load and startup", re.compile(r"pts/models\.py|load_engine|from_pretrained|<module>")),
]
IDLE = re.compile(r"(^|\.)(wait|_wait_for_tstate_lock|acquire|sleep|select|poll|_worker|get) \(")


def categorise(frames: list[str]) -> str:
    """The category of one stack (frames from the outermost to the innermost)."""
    for frame in reversed(frames):
        for name, pattern in RULES:
            if pattern.search(frame):
                return name
    return "idle (thread pool, waits)" if frames and IDLE.search(frames[-1]) else "other"


def read(path: str) -> tuple[Counter, Counter, int]:
    """Samples per category for all threads, for the main thread alone, and the main thread's sample count."""
    every, main = Counter(), Counter()
    main_ticks = 0
    for line in open(path, encoding="utf-8"):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        thread = next((f for f in stack.split(";") if f.startswith("thread ")), "")
        category = categorise(frames)
        every[category] += n
        if thread.endswith("MainThread"):
            main[category] += n
            main_ticks += n
    return every, main, main_ticks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("profile", help="py-spy --format raw output")
    ap.add_argument("--rate", type=float, default=20.0, help="py-spy's samples per second (-r)")
    args = ap.parse_args()
    every, _, main_ticks = read(args.profile)
    wall = main_ticks / args.rate
    engine = sum(n for c, n in every.items() if c.startswith("engine") or c.startswith("stop test"))
    print(f"wall (main thread samples): {wall:.0f} s")
    print(f"{'category':<42} {'thread-seconds':>14} {'share of wall':>14}")
    for category, n in every.most_common():
        print(f"{category:<42} {n / args.rate:14.1f} {n / max(main_ticks, 1):14.1%}")
    print(f"engine running (forward, sampling, stop tests, decoding): {engine / max(main_ticks, 1):.1%} of wall")


if __name__ == "__main__":
    main()
