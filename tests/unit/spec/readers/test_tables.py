"""The options page is generated from the readers' tables and says what each row does."""

from __future__ import annotations

from pathlib import Path

from lorapilot.spec.readers import aitoolkit, diffusion_pipe
from lorapilot.spec.readers.tables import census, dialect_tables, markdown

PAGE = Path(__file__).resolve().parents[4] / "docs" / "dialect-options.md"


def test_the_committed_options_page_is_the_one_the_tables_generate():
    assert PAGE.read_text(encoding="utf-8") == markdown(), (
        "docs/dialect-options.md is out of date; regenerate it with "
        "`python -m lorapilot.spec.readers.tables --markdown > docs/dialect-options.md`"
    )


def test_the_page_counts_and_lists_every_row_of_each_dialect():
    text = markdown()
    for dialect, tables in dialect_tables().items():
        counts = census(tables)
        assert f"## {dialect}\n\n{sum(counts.values())} options: {counts['honoured']} honoured" in text
    assert "| `sqlite_db_path` | notice |" in text
    assert "| `transformer_dtype` | honoured |" in text


def test_every_handler_row_says_what_it_does():
    for module in (aitoolkit, diffusion_pipe):
        for section, table in module.TABLES.items():
            for key, rule in table.items():
                text = getattr(rule, "reason", None) or getattr(rule, "path", None) or rule.__doc__
                assert text, f"{module.DIALECT} {section}.{key} has no description"
