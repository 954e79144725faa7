"""``TraceEnum_ELBO``: Pyro's ELBO with discrete latents summed out exactly, as a pyrovae ELBO.

Guide sites marked for parallel enumeration (``infer={"enumerate": "parallel"}``,
:func:`pyro.infer.config_enumerate`) take every value of their support at once, in a tensor
dimension left of the plates, and the ELBO sums over them weighted by q instead of sampling
them (Pyro's :class:`pyro.infer.TraceEnum_ELBO`; Obermeyer et al., "Tensor variable
elimination for plated factor graphs", 2019). This is how the semi-supervised VAE's class
variable is trained (Kingma et al., 2014). The estimator is Pyro's, unchanged.
"""

from __future__ import annotations

from typing import ClassVar

import pyro.infer

from .elbo import ELBO

__all__ = ["TraceEnum_ELBO"]


class TraceEnum_ELBO(pyro.infer.TraceEnum_ELBO, ELBO):
    """:class:`pyro.infer.TraceEnum_ELBO` (its loss, gradient and arguments), built by
    ``objective.type = "trace_enum_elbo"``; ``differentiable_loss`` is the negative ELBO
    summed over the batch (nats per batch)::

        svi = SVI(module.model, module.guide, optim, loss=pyrovae.infer.TraceEnum_ELBO(
            max_plate_nesting=1))
    """

    sums_out_enumerated: ClassVar[bool] = True
