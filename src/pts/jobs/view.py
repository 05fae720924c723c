"""``pts view``: an HTML report of pts's files, written to one self-contained file or served on 127.0.0.1.

``run(ViewConfig(files=[...])) -> ReportSummary``; the page itself is built by :mod:`pts.view`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pts import options
from pts.errors import PTSError
from pts.options import option

if TYPE_CHECKING:
    from pts.view import ReportSummary


HELP = "see pivotal tokens, trajectories, DPO pairs, critical tokens and contrast scores in the browser (offline)"
"""The command's one line in ``pts --help``."""


@options.config
class ViewConfig:
    """Every option of ``pts view``."""

    files: list[str] = option(
        help="JSONL files: pivotal tokens (pts run or the original tool), DPO pairs, steering "
        "vectors, critical tokens, contrast scores, or a search trace",
        positional=True,
        metavar="FILE",
    )
    output: str | None = option(
        None, "HTML file to write (default: report.html; with --serve, only written when given)"
    )
    serve: bool = option(False, "serve the report on http://127.0.0.1:PORT/ until Ctrl-C")
    port: int | None = option(None, "port for --serve; 0 picks a free one (default: 8765)")

    def validate(self) -> None:
        options.check(self)
        if self.port is not None and not self.serve:
            raise PTSError("--port needs --serve")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise PTSError(f"--port must be between 0 and 65535, got {self.port}")


def run(config: ViewConfig, *, echo: Callable[[str], None] = print) -> ReportSummary | Served:
    """Write the report (or serve it until Ctrl-C); ``echo`` gets the summary and the address before serving."""
    from pts.view import DEFAULT_OUTPUT, build_report, check_report_path, render_report, write_page
    from pts.view.serve import DEFAULT_PORT, serve

    config.validate()
    if not config.serve:
        return build_report(config.files, config.output or DEFAULT_OUTPUT)
    if config.output:
        check_report_path(config.output, config.files)
    page, summary = render_report(config.files)
    if config.output:
        write_page(page, config.output)
        summary.output_path = config.output
    echo(summary.format())
    serve(page, DEFAULT_PORT if config.port is None else config.port, announce=echo)
    return Served()


class Served:
    """What ``pts view --serve`` says once Ctrl-C stops the server (its summary was printed before serving)."""

    def format(self) -> str:
        return "stopped serving the report"


CONFIG = ViewConfig
"""The options of this command (the CLI makes its flags from it)."""
