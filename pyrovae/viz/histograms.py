"""Histograms of a score over two sets of examples: how far apart the in-distribution and the
out-of-distribution examples lie (``pyrovae ood``; :mod:`pyrovae.evaluation.ood`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["UNITS", "plot_score_histograms"]

#: the unit of each score of :mod:`pyrovae.evaluation.ood`
UNITS = {"log_likelihood": "nats", "llr": "nats", "complexity": "bits", "typicality": "nats"}
#: what each panel's x axis shows
AXES = {
    "log_likelihood": "-log p(x)",
    "llr": "-(log p(x) - log p_B(x))",
    "complexity": "-log2 p(x) - L(x)",
    "typicality": "|-log p(x) - train mean|",
}


def plot_score_histograms(
    scores_in: Mapping[str, torch.Tensor],
    scores_out: Mapping[str, torch.Tensor],
    aurocs: Mapping[str, float],
    labels: tuple[str, str] = ("in", "out"),
    bins: int = 40,
) -> Figure:
    """One panel per score (``{name: (N,)}``, larger: more out-of-distribution): the two sets'
    histograms over shared bins (each normalized to a density), titled with the AUROC."""
    names = [name for name in scores_in if name in scores_out]
    fig = Figure(figsize=(3.6 * len(names), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names):
        a = scores_in[name].detach().double().cpu().numpy()
        b = scores_out[name].detach().double().cpu().numpy()
        both = np.concatenate([a, b])
        edges = np.histogram_bin_edges(both[np.isfinite(both)], bins=bins)
        for values, label, colour in ((a, labels[0], "tab:blue"), (b, labels[1], "tab:orange")):
            ax.hist(values, bins=edges, density=True, alpha=0.55, color=colour, label=label)
        ax.set_title(f"{name} (AUROC {aurocs[name]:.3f})", fontsize=10)
        ax.set_xlabel(f"{AXES.get(name, name)} ({UNITS.get(name, '')})", fontsize=9)
        ax.set_yticks([])
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    return fig
