"""MkDocs hooks of pyrovae's documentation site (``mkdocs.yml`` names this file).

The pages in ``docs/`` link to files outside it (``../bench/RESULTS.md``, ``../configs/``,
``../README.md#...``), as they must to work where the Markdown is read as it is (GitHub, an
editor). The site takes those files in too: the README as its home page (``index.md``), the
other files under ``repo/``, and every relative link of every page is rewritten to where its
target lands in the site, so that ``mkdocs build --strict`` checks every link (a link to a file
that does not exist fails the build)."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent
#: the files outside docs/ that the site holds (repository paths; globs)
OUTSIDE = ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "bench/RESULTS.md", "configs/*.toml",
           "examples/*.py")
LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def site_path(repo_path: str) -> str:
    """Where the file at ``repo_path`` (relative to the repository) lands in the site."""
    if repo_path == "README.md":
        return "index.md"
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/"):]
    return "repo/" + repo_path


def repo_path(site: str) -> str:
    """The repository path of the site file ``site`` (the inverse of :func:`site_path`)."""
    if site == "index.md":
        return "README.md"
    if site.startswith("repo/"):
        return site[len("repo/"):]
    return "docs/" + site


def on_files(files, config):
    for pattern in OUTSIDE:
        for path in sorted(ROOT.glob(pattern)):
            relative = path.relative_to(ROOT).as_posix()
            files.append(File.generated(config, site_path(relative), abs_src_path=str(path)))
    return files


def _rewrite(link: str, page_site: str) -> str:
    """``link`` of the page ``page_site``, pointing where its target lands in the site."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", link) or link.startswith(("#", "/")):
        return link  # a URL, an anchor of the same page, or an absolute path
    path, hash_, fragment = link.partition("#")
    page_repo = repo_path(page_site)
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page_repo), path))
    moved = site_path(target)
    relative = posixpath.relpath(moved, posixpath.dirname(page_site) or ".")
    return relative + ("/" if path.endswith("/") else "") + hash_ + fragment


def on_page_markdown(markdown, page, config, files):
    site = page.file.src_uri
    return LINK.sub(lambda m: m.group(1) + _rewrite(m.group(2), site) + m.group(3), markdown)


# ---------------------------------------------------------------------------- docstrings
try:
    from griffe import Extension
except ImportError:  # griffe comes with mkdocstrings[python]
    Extension = object  # type: ignore[assignment,misc]

#: a Sphinx cross-reference role in a docstring: :func:`~pyrovae.evaluate`, :class:`VAE`...
ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


class SphinxRoles(Extension):
    """Show the Sphinx roles of pyrovae's docstrings (written for ``help()`` and editors) as
    code: ``:func:`~pyrovae.evaluate``` becomes ``pyrovae.evaluate`` in monospace."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda m: f"``{m.group(1)}``", obj.docstring.value)
