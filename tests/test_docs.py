"""Every Python snippet in the user documentation (README.md, docs/*.md, CONTRIBUTING.md) runs
as written, each in a fresh interpreter, and shows a result."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "CONTRIBUTING.md"]
SNIPPETS = [
    (page.relative_to(ROOT).as_posix(), index, code)
    for page in PAGES
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
]


def test_the_readme_and_the_reference_pages_have_snippets():
    pages = {page for page, _, _ in SNIPPETS}
    assert sum(page == "README.md" for page, _, _ in SNIPPETS) >= 3
    assert {"docs/configuration.md", "docs/objectives.md", "docs/performance.md"} <= pages


@pytest.mark.parametrize(("page", "index", "code"), SNIPPETS,
                         ids=[f"{page}-{index}" for page, index, _ in SNIPPETS])
def test_snippet_runs(page, index, code, tmp_path):
    # a fresh process: snippets may register components or write runs/ in the working dir
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{page} snippet {index} failed:\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{page} snippet {index} should show its result"
