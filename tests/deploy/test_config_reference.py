"""The configuration reference in docs/configuration.md is the one the code generates."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from alertbutler.config import Config, config_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_docs_embed_the_generated_reference() -> None:
    text = DOC.read_text()
    match = re.search(r"<!-- BEGIN generated: alertbutler config reference -->\n(.*?)\n"
                      r"<!-- END generated -->", text, re.S)
    assert match, "docs/configuration.md lost its generated-reference markers"
    assert match.group(1) == config_reference().rstrip("\n"), \
        "regenerate with: alertbutler config reference"


def test_every_key_is_documented() -> None:
    reference = config_reference()
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        for f in dataclasses.fields(cls):
            row = next(line for line in reference.splitlines()
                       if line.startswith(f"| `{section.name}.{f.name}` |"))
            cells = re.split(r"(?<!\\)\|", row.strip().strip("|"))
            assert len(cells) == 4 and cells[3].strip(), \
                f"{section.name}.{f.name} has no #: comment in config.py"
