"""The format registry (pts.formats) and the model alias table (pts.aliases): names, recognition, cheap imports."""

import json
import subprocess
import sys

import pytest
from view_samples import write_planted

from pts import aliases, formats
from pts.errors import PTSError
from pts.formats.base import FileSummary
from pts.view.shapes import SHAPES


def test_names_and_spellings():
    assert formats.names() == (
        "pivotal",
        "dpo",
        "steering",
        "critical",
        "control-vector",
        "contrast",
        "trace",
        "thought-anchors",
        "thought-anchors-viewer",
    )
    assert formats.names(published=True) == (
        "pivotal",
        "dpo",
        "steering",
        "critical",
        "control-vector",
        "thought-anchors",
    )
    assert tuple(f.name for f in formats.registered() if f.writes) == (
        "dpo",
        "steering",
        "control-vector",
        "thought-anchors",
        "thought-anchors-viewer",
    )
    assert formats.get(" Pivotal-Tokens ").name == "pivotal" and formats.get("gguf").name == "control-vector"
    with pytest.raises(PTSError, match="unknown format 'parquet': expected one of pivotal, dpo, .*, trace, thought-"):
        formats.get("parquet")
    with pytest.raises(PTSError, match="unknown format 'trace': expected one of .*control-vector, thought-anchors$"):
        formats.get("trace", published=True)
    with pytest.raises(ValueError, match="taken"):
        formats.register(formats.get("dpo"))


def test_every_planted_file_is_detected_by_its_first_record(tmp_path):
    files = write_planted(tmp_path)
    assert set(SHAPES) == set(formats.shapes()) == set(files)
    for kind, path in files.items():
        row = json.loads(path.read_text().splitlines()[0])
        fmt = formats.detect(row)
        assert fmt is not None and fmt.shape(row) == kind, kind
    assert formats.detect({"question": "q", "answer": "a"}) is None
    # Field names alone do as well as a record.
    assert formats.detect(["pivot_context", "pivot_token", "prob_delta"]).name == "pivotal"
    assert formats.detect({"pivot_context", "pivot_token", "steering_vector"}).name == "steering"


def test_published_formats_have_card_facts():
    for name in formats.names(published=True):
        fmt = formats.get(name)
        assert fmt.title and fmt.tags and fmt.fields and fmt.noun, name
        assert all(isinstance(text, str) and text.endswith((".", ")")) for text in fmt.fields.values()), name
    for name in ("contrast", "trace"):
        assert not formats.get(name).published and formats.get(name).fields


def test_a_record_kind_recognises_rows_and_describes_the_fields_every_record_has(tmp_path):
    for name, kind in (
        ("critical", "critical_token"),
        ("thought-anchors", "thought_anchor"),
        ("contrast", "contrastive_scores"),
    ):
        fmt = formats.get(name)
        assert fmt.record_kind == kind and fmt.matches({"kind": kind}) and not fmt.matches({"kind": "other"})
        s = FileSummary(tmp_path / "f.jsonl", name, 1)
        assert fmt.describe(s, "kind") == f"Record kind (`{kind}`)."
        assert fmt.describe(s, "schema_version") and fmt.describe(s, "timestamp")
    # A format's own text wins: what its id is made from.
    assert "both models" in formats.get("contrast").describe(s, "id")
    # The card lists search settings for the formats whose records carry them.
    assert [n for n in formats.names() if formats.get(n).shows_search] == ["pivotal", "critical", "thought-anchors"]


def test_importing_formats_aliases_and_the_card_is_cheap():
    code = (
        "import sys, pts.formats, pts.aliases, pts.hub.card, pts.view.shapes, pts.jobs.push; "
        "print(sorted({'torch', 'transformers', 'datasets', 'huggingface_hub'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_alias_table_matches_the_model_loader():
    from pts import models

    assert aliases.DEFAULT_MODEL == models.DEFAULT_MODEL
    assert aliases.ALIAS_MODEL_IDS == {name: a.model_id for name, a in models.ALIASES.items()}
    for name, a in models.ALIASES.items():
        hub = aliases.hub_model_id(name)
        assert hub == aliases.hub_model_id(a.model_id) and hub in a.origin, name
    assert aliases.hub_model_id("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B" and aliases.hub_model_id(None) is None


def test_the_cards_reconstructed_command_gives_back_every_search_setting(tmp_path):
    """Records carry every search setting (derived from SearchSettings' fields), and the card's `pts run` command
    parses into the same settings: flags that only switch something off (--no-verify, --no-pool...) included."""
    import dataclasses
    import shlex

    from pts.cli import build_parser
    from pts.engines.fake import PassFailOracle, create
    from pts.formats.pivotal import reconstructed_command
    from pts.hub.card import build_card, inspect_file
    from pts.search.searcher import PivotalTokenSearcher, SearchSettings
    from pts.store import write_jsonl
    from pts.tasks.task import Task

    defaults = SearchSettings()
    changed = {  # every setting away from its default, so that a dropped flag shows
        "prob_threshold": 0.3,
        "num_samples": 6,
        "max_generations": 2,
        "min_prob": 0.1,
        "max_prob": 0.9,
        "split_at": "middle",
        "confidence": 0.8,
        "pool": False,
        "verify": False,
        "verify_samples": 32,
        "verify_confidence": 0.9,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 5,
        "min_p": 0.05,
        "seed": 7,
        "max_new_tokens": 4,
        "early_stop": False,
        "system_prompt": "Answer briefly.",
        "chat_template": False,
        "bound": False,
        "verify_strata": False,
        "direct_at_most": 3,
        "max_span": 2,
    }
    assert set(changed) == {f.name for f in dataclasses.fields(SearchSettings)}, "a new search setting: add it here"
    assert all(changed[k] != getattr(defaults, k) for k in changed)
    settings = SearchSettings(**changed)
    task = Task("question", "PASS", "q0", "demo", "demo", PassFailOracle())
    result = PivotalTokenSearcher(create("m"), settings).search(task)
    assert result.pivots
    path = tmp_path / "pivots.jsonl"
    write_jsonl(path, [p.to_dict() for p in result.pivots])

    summary = inspect_file(path)
    command = reconstructed_command(summary)
    assert command in str(build_card(path, repo_id="user/demo"))
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert SearchSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SearchSettings)}) == settings
    assert "--no-verify" in command and "--no-pool" in command and "--no-chat-template" in command
