"""README stays true: the settings table matches the code, CI runs README's test command."""

from __future__ import annotations

from sms_gateway.config import PROJECT_ROOT, markdown_table


def test_readme_settings_table_matches_the_code() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    begin, end = "<!-- settings-table:begin -->\n", "<!-- settings-table:end -->"
    table = readme[readme.index(begin) + len(begin):readme.index(end)].strip()
    assert table == markdown_table(), "regenerate with: sms-gateway config --markdown"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci = (PROJECT_ROOT / ".ci/run").read_text()
    assert "make test" in readme and "make run" in readme
    assert "\nmake test\n" in ci
