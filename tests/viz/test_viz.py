"""pyrovae.viz is optional at import time: ``import pyrovae`` (and the CLI's figure-kind
constants) do not import matplotlib, and drawing and saving figures never changes the user's
matplotlib backend (nor goes through pyplot). Each check runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def run_python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter (the repository importable, MNIST never needed);
    return its stdout."""
    environment = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    environment.update(env)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_import_pyrovae_leaves_matplotlib_unimported():
    out = run_python(
        "import sys\n"
        "import pyrovae, pyrovae.cli\n"
        "from pyrovae.viz import FIGURE_KINDS, NEEDS_DATA\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    assert out.strip() == "[]"


def test_drawing_and_saving_keep_the_users_backend(tmp_path):
    """With the backend chosen by the user ($MPLBACKEND = svg, a non-interactive backend that
    cannot write PNGs itself), pyrovae draws and writes PNGs without switching it."""
    out = run_python(
        "import sys, matplotlib\n"
        "before = matplotlib.get_backend()\n"
        "import torch, pyrovae\n"
        "from pyrovae.viz import plots, save_figure\n"
        "fig = plots.plot_samples(torch.rand(16, 784), (1, 28, 28))\n"
        f"path = save_figure(fig, {str(tmp_path / 'samples.png')!r})\n"
        "print(before, matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules,"
        " path.stat().st_size > 0)\n",
        MPLBACKEND="svg",
    )
    assert out.split() == ["svg", "svg", "False", "True"]

