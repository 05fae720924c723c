"""``pts push``: upload a pts output file and a generated dataset card to the Hugging Face Hub.

``run(PushConfig(input_path=..., hf_repo_id=...)) -> PushSummary``; the card is
rendered by :mod:`pts.hub.card` from the file format's facts in :mod:`pts.formats`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pts import formats, options
from pts.options import option

HELP = "upload a pts output file (pivotal tokens, DPO pairs, steering or control vectors) to a Hub dataset repo"
"""The command's one line in ``pts --help``."""


@options.config
class PushConfig:
    """Every option of ``pts push``."""

    input_path: str = option(
        help="file to upload: pts run records, a pts export output (.jsonl) or a control vector (.gguf)"
    )
    hf_repo_id: str = option(help="dataset repo to create or update", metavar="USER/NAME", aliases=("--hf-repo",))
    private: bool = option(False, "create the repo private (an existing public repo is refused, not changed)")
    readme: bool = option(
        True, "replace the repo's README.md with a generated dataset card (--no-readme: upload the file only)"
    )
    model: str | None = option(
        None, "model to name in the card and its usage snippets (default: the records' model_id)"
    )
    format: str | None = option(
        None, "what the file holds (default: detected from its content)", choices=tuple(formats.names(published=True))
    )
    license: str = option("apache-2.0", "license in the card's metadata")
    generating_command: str | None = option(
        None,
        "the command that generated the file, shown in the card (default: the options recorded in pts run records)",
        flag="--command",
        metavar="COMMAND",
    )
    path_in_repo: str | None = option(None, "name of the file in the repo (default: its base name)")
    commit_message: str | None = option(None, "commit message (default: describes the upload)")


_PASSED_ON = ("private", "readme", "model", "license", "path_in_repo", "commit_message")
"""The options :func:`pts.hub.push_dataset` takes under the same names."""


@dataclass
class PushSummary:
    input_path: str
    rows: int
    unit: str
    format_name: str
    readme: bool
    url: str

    def format(self) -> str:
        card = " and a dataset card" if self.readme else ""
        return f"pushed {self.input_path} ({self.rows} {self.unit}, {self.format_name}){card} to {self.url}"


def run(config: PushConfig) -> PushSummary:
    """Check the file, render its card and upload both; one-line PTSError on any failure."""
    from pts.hub import inspect_file, push_dataset

    options.check(config)
    summary = inspect_file(config.input_path, config.format)
    same_names = {name: getattr(config, name) for name in _PASSED_ON}
    url = push_dataset(
        config.input_path,
        config.hf_repo_id,
        fmt=summary.fmt,
        command=config.generating_command,
        summary=summary,
        **same_names,
    )
    return PushSummary(config.input_path, summary.rows, formats.get(summary.fmt).unit, summary.fmt, config.readme, url)


CONFIG = PushConfig
"""The options of this command (the CLI makes its flags from it)."""
