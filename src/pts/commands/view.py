"""``pts view``: an HTML report of pts's files, written to one self-contained file or served on 127.0.0.1."""

from __future__ import annotations

import argparse

NAME = "view"
HELP = "see pivotal tokens, trajectories, DPO pairs, critical tokens and contrast scores in the browser (offline)"
ORDER = 15


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="JSONL files: pivotal tokens (pts run or the original tool), DPO pairs, steering vectors, "
                        "critical tokens, contrast scores, or a search trace")
    p.add_argument("--output", default=None,
                   help="HTML file to write (default: report.html; with --serve, only written when given)")
    p.add_argument("--serve", action="store_true", help="serve the report on http://127.0.0.1:PORT/ until Ctrl-C")
    p.add_argument("--port", type=int, default=None, help="port for --serve; 0 picks a free one (default: 8765)")


def main(args: argparse.Namespace) -> int:
    from pts.errors import PTSError
    from pts.view import DEFAULT_OUTPUT, build_report, check_report_path, render_report, write_page
    from pts.view.serve import DEFAULT_PORT, serve

    if args.port is not None and not args.serve:
        raise PTSError("--port needs --serve")
    port = DEFAULT_PORT if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise PTSError(f"--port must be between 0 and 65535, got {port}")
    if not args.serve:
        print(build_report(args.files, args.output or DEFAULT_OUTPUT).format())
        return 0
    if args.output:
        check_report_path(args.output, args.files)
    page, summary = render_report(args.files)
    if args.output:
        write_page(page, args.output)
        summary.output_path = args.output
    print(summary.format(), flush=True)
    serve(page, port, announce=lambda line: print(line, flush=True))
    return 0
