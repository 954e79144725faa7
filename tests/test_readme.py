"""Every Python snippet in README.md runs as written, each in a fresh interpreter."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 5


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path):
    # a fresh process: snippets may register components or write runs/ in the working dir
    proc = subprocess.run([sys.executable, "-c", SNIPPETS[index]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"README snippet {index} failed:\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), "a README snippet should show its result"
