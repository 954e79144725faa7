"""Every Python snippet in the user documentation (README.md, docs/*.md, CONTRIBUTING.md) runs
as written, each in a fresh interpreter, and shows a result."""

import os
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


def test_the_site_has_the_pages_of_docs():
    """mkdocs.yml's navigation lists every page of docs/ (and only those, with the README as
    its home page)."""
    nav = re.findall(r"^  - [^:\n]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert nav[0] == "index.md"
    assert sorted(nav[1:]) == sorted(p.name for p in (ROOT / "docs").glob("*.md"))


def test_the_site_rewrites_links_to_where_their_targets_land():
    pytest.importorskip("mkdocs")
    sys.path.insert(0, str(ROOT))
    try:
        import mkdocs_hooks as hooks
    finally:
        sys.path.remove(str(ROOT))
    rewrite = hooks._rewrite
    assert rewrite("../bench/RESULTS.md#scaling-out", "scaling.md") == (
        "repo/bench/RESULTS.md#scaling-out")
    assert rewrite("../README.md#the-model", "objectives.md") == "index.md#the-model"
    assert rewrite("docs/data.md", "index.md") == "data.md"
    assert rewrite("../docs/guarantees.md#x", "repo/bench/RESULTS.md") == "../../guarantees.md#x"
    assert rewrite("configs/", "index.md") == "repo/configs/"
    for kept in ("https://pyro.ai", "#a-heading", "mailto:a@b.c"):
        assert rewrite(kept, "data.md") == kept


def test_the_site_builds_strictly(tmp_path):
    """``mkdocs build --strict`` (as .ci/run does): a broken link, anchor or API reference
    fails it."""
    pytest.importorskip("mkdocstrings")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()
