"""Upload a pts output file and its dataset card to a Hugging Face dataset repo.

Everything that can be checked locally (the file, the repo id, the token,
offline mode) is checked before the first request; every Hub or network
failure becomes a one-line :class:`~pts.errors.PTSError`. The data file and
``README.md`` go up in one commit, so the repo never shows a card without its
data. ``HF_ENDPOINT`` is honoured (huggingface_hub reads it), or pass
``endpoint``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pts import formats
from pts.errors import PTSError, first_line
from pts.formats import FileSummary
from pts.hub.card import build_card, inspect_file

log = logging.getLogger(__name__)

NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` stripped, if it is a valid Hub repo id (``USER/NAME``, or ``NAME`` in the token's namespace)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    rid = (repo_id or "").strip()
    parts = rid.split("/")
    if not rid or len(parts) > 2 or not all(parts):
        raise PTSError(f"bad repo id {repo_id!r}: expected USER/NAME (e.g. alice/pivotal-tokens)")
    try:
        validate_repo_id(rid)
    except HFValidationError as e:
        reason = first_line(e)
        raise PTSError(f"bad repo id {repo_id!r}: {reason}") from None
    return rid


def check_path_in_repo(path_in_repo: str, readme: bool) -> str:
    """``path_in_repo`` if it is a relative POSIX path inside the repo that does not clash with the card."""
    name = path_in_repo.strip()
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise PTSError(f"bad --path-in-repo {path_in_repo!r}: expected a relative path such as data/train.jsonl")
    if readme and name == "README.md":
        raise PTSError("--path-in-repo README.md would be overwritten by the dataset card (add --no-readme)")
    return name


def resolve_token(token: str | None = None) -> str:
    """``token``, else ``HF_TOKEN``, else the cached ``hf auth login`` token; PTSError when there is none."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PTSError(NO_TOKEN)
    return token


def _one_line(text: str | None, limit: int = 300) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextmanager
def _hub_errors(action: str, repo_id: str, endpoint: str) -> Iterator[None]:
    """Turn what huggingface_hub and the network raise during ``action`` into one-line PTSErrors."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except PTSError:
        raise
    except OfflineModeIsEnabled:
        raise PTSError(f"cannot {action}: offline mode is on (HF_HUB_OFFLINE=1); unset it to push") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        detail = _one_line(e.server_message)
        suffix = f" ({detail})" if detail else ""
        namespace = repo_id.split("/")[0] if "/" in repo_id else "your namespace"
        if status == 401:
            msg = (
                f"the Hub at {endpoint} rejected the token (401 Unauthorized){suffix}: check HF_TOKEN or run "
                "`hf auth login`"
            )
        elif status == 403:
            msg = f"no permission to {action} (403 Forbidden){suffix}: the token needs write access to {namespace}"
        elif status == 404:
            msg = f"cannot {action}: not found (404){suffix}"
        else:
            msg = f"cannot {action}: the Hub at {endpoint} answered HTTP {status}{suffix}"
        raise PTSError(msg) from None
    except OSError as e:
        if e.filename and not isinstance(e, ConnectionError):  # the local file, not the network
            raise PTSError(f"cannot {action}: cannot read {e.filename} ({e.strerror or e})") from None
        reason = _one_line(str(e)) or type(e).__name__
        raise PTSError(f"cannot {action}: cannot reach the Hub at {endpoint} ({reason})") from None
    except httpx2.HTTPError as e:
        reason = _one_line(str(e)) or type(e).__name__
        raise PTSError(f"cannot {action}: cannot reach the Hub at {endpoint} ({reason})") from None
    except ValueError as e:
        # huggingface_hub raises ValueError for a card the Hub's YAML validator refuses and for malformed answers.
        raise PTSError(f"cannot {action}: {_one_line(str(e))}") from None


def push_dataset(
    path: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    readme: bool = True,
    model: str | None = None,
    fmt: str | None = None,
    command: str | None = None,
    token: str | None = None,
    license: str = "apache-2.0",
    path_in_repo: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
    summary: FileSummary | None = None,
) -> str:
    """Create (or reuse) the dataset repo ``repo_id`` and upload ``path`` with a generated dataset card.

    ``private`` creates the repo private, and refuses to upload into an
    existing public repo. The generated card replaces the repo's README.md;
    ``readme=False`` uploads the data file only and leaves README.md alone.
    ``model``/``fmt``/``command``/``license`` go into the card (see
    :func:`pts.hub.build_card`). ``token`` defaults to ``HF_TOKEN`` or the
    cached login; ``endpoint`` to ``HF_ENDPOINT`` or huggingface.co. The file
    is uploaded as ``path_in_repo`` (default: its base name). Returns the repo's
    URL. Raises PTSError (one line) for bad input, no token, offline mode and
    any Hub or network failure; nothing is uploaded before every local check
    has passed.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    from pts import __version__

    summary = summary or inspect_file(path, fmt)
    repo_id = check_repo_id(repo_id)
    filename = check_path_in_repo(path_in_repo or Path(path).name, readme)
    token = resolve_token(token)
    if constants.is_offline_mode():
        raise PTSError("cannot push to the Hub: offline mode is on (HF_HUB_OFFLINE=1); unset it to push")
    api = HfApi(endpoint=endpoint, token=token, library_name="pts", library_version=__version__)
    where = api.endpoint

    with _hub_errors(f"create dataset repo {repo_id}", repo_id, where):
        url = api.create_repo(repo_id, repo_type="dataset", private=True if private else None, exist_ok=True)
    repo_id = url.repo_id or repo_id  # a bare NAME lands in the token's namespace
    if private:
        # create_repo(exist_ok=True) succeeds on an existing repo without changing its visibility.
        with _hub_errors(f"check the visibility of {repo_id}", repo_id, where):
            info = api.repo_info(repo_id, repo_type="dataset")
        if info.private is False:
            raise PTSError(
                f"{repo_id} already exists and is public: --private would not make it private; "
                "change its visibility on the Hub or push to a new repo"
            )

    operations = [CommitOperationAdd(path_in_repo=filename, path_or_fileobj=str(path))]
    if readme:
        card = build_card(
            path, summary.fmt, model, command, repo_id=repo_id, license=license, path_in_repo=filename, summary=summary
        )
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    unit = formats.get(summary.fmt).unit
    message = commit_message or f"Upload {filename} ({summary.rows} {unit}, {summary.fmt}) with pts"
    with _hub_errors(f"upload {filename} to {repo_id}", repo_id, where):
        api.create_commit(repo_id, operations, commit_message=message, repo_type="dataset")
    log.info("pushed %s to %s", filename, url)
    return str(url)
