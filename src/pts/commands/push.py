"""``pts push``: upload a pts output file and a generated dataset card to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from pts import formats

NAME = "push"
HELP = "upload a pts output file (pivotal tokens, DPO pairs, steering or control vectors) to a Hub dataset repo"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-path", required=True,
                        help="file to upload: pts run records, a pts export output (.jsonl) or a control vector (.gguf)")
    parser.add_argument("--hf-repo", "--hf-repo-id", dest="hf_repo", required=True, metavar="USER/NAME",
                        help="dataset repo to create or update (--hf-repo-id is an alias)")
    parser.add_argument("--private", action="store_true",
                        help="create the repo private (an existing public repo is refused, not changed)")
    parser.add_argument("--no-readme", dest="readme", action="store_false",
                        help="upload the file only; the repo's README.md is left as it is "
                             "(by default a generated dataset card replaces it)")
    parser.add_argument("--model", default=None,
                        help="model to name in the card and its usage snippets (default: the records' model_id)")
    parser.add_argument("--format", dest="fmt", default=None,
                        choices=formats.names(published=True),
                        help="what the file holds (default: detected from its content)")
    parser.add_argument("--license", default="apache-2.0", help="license in the card's metadata (default: apache-2.0)")
    parser.add_argument("--command", dest="generating_command", default=None, metavar="COMMAND",
                        help="the command that generated the file, shown in the card "
                             "(default: the options recorded in pts run records)")
    parser.add_argument("--path-in-repo", default=None, help="name of the file in the repo (default: its base name)")
    parser.add_argument("--commit-message", default=None, help="commit message (default: describes the upload)")


def main(args: argparse.Namespace) -> int:
    from pts.hub import inspect_file, push_dataset

    summary = inspect_file(args.input_path, args.fmt)
    url = push_dataset(args.input_path, args.hf_repo, private=args.private, readme=args.readme, model=args.model,
                       fmt=summary.fmt, command=args.generating_command, license=args.license,
                       path_in_repo=args.path_in_repo, commit_message=args.commit_message, summary=summary)
    unit = formats.get(summary.fmt).unit
    card = " and a dataset card" if args.readme else ""
    print(f"pushed {args.input_path} ({summary.rows} {unit}, {summary.fmt}){card} to {url}")
    return 0

