"""The figure kinds (``pyrovae plot --kind``), in a module that imports nothing, so that the
command line can offer them without importing torch or matplotlib."""

__all__ = ["FIGURE_KINDS", "LATENT_SPACE_KINDS", "NEEDS_DATA", "PROGRAM_KINDS"]

#: every figure kind :func:`pyrovae.viz.figures.draw` knows
FIGURE_KINDS = (
    "samples",
    "reconstructions",
    "curves",
    "latent",
    "manifold",
    "interpolation",
    "classes",
    "kl_per_dimension",
)
#: the kinds drawn from the test set (``draw(..., data=...)``)
NEEDS_DATA = ("reconstructions", "latent", "interpolation", "kl_per_dimension")
#: the figures any model has: drawn from its ``sample``, ``reconstruct`` and a run's metrics
PROGRAM_KINDS = ("samples", "reconstructions", "curves")
#: the figures that read a single latent space
#: (:meth:`pyrovae.models.program.Program.latent_space`)
LATENT_SPACE_KINDS = ("latent", "manifold", "interpolation", "kl_per_dimension")
