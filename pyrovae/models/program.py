"""The model contract: what pyrovae asks of a model, and what every model gets for free.

A model is a :class:`Program`: a :class:`torch.nn.Module` with two Pyro programs, ``model`` and
``guide``. :class:`~pyrovae.VAE` and :class:`~pyrovae.HierarchicalVAE` are programs; so is any
module of yours, adapted once by :func:`as_program` where it enters pyrovae. Every consumer
(the trainer, the estimators, the figures, the command line) is written against this class
alone and asks a model what it can do through it.

Example::

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = torch.nn.Linear(4, 2)

        def model(self, x, y=None):
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
                pyro.sample("x", dist.Normal(z @ torch.ones(2, 4), 1.0).to_event(1), obs=x)

        def guide(self, x, y=None):
            with pyro.plate("data", x.shape[0]):
                pyro.sample("z", dist.Normal(self.loc(x), 1.0).to_event(1))

    program = as_program(Tiny())        # checked once, here
    program.sample(3)                   # (3, 4): the mean of site "x", z from the prior
"""

from __future__ import annotations

import abc
import contextlib
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch import nn

from ..errors import ConfigError, DataError
from ..registry import PositiveInt, check_value
from ..viz.kinds import PROGRAM_KINDS

if TYPE_CHECKING:  # annotations only: the components do not depend on the contract
    from .guides import GuideFamily
    from .likelihoods import Likelihood
    from .priors import Prior

__all__ = [
    "OPTIONAL",
    "LatentSpace",
    "LocalParameters",
    "Program",
    "as_program",
    "check_program",
    "is_latent",
    "latent_sites",
]

#: where a program's contract is explained, for error messages
DOCS = "docs/programs.md"


def is_latent(site: Any) -> bool:
    """Whether a Pyro trace site (or effect message) is a latent variable: a sample site that
    is neither observed (nor was, before ``poutine.uncondition``), nor a plate's subsample,
    nor marked not to be scored. The one definition every estimator uses."""
    if site["type"] != "sample":
        return False
    infer = site["infer"] or {}
    return (
        not site["is_observed"]
        and not infer.get("was_observed", False)
        and not infer.get("_do_not_score", False)
        and not site_is_subsample(site)
    )


def latent_sites(trace: Any) -> dict[str, Any]:
    """The latent sites (:func:`is_latent`) of a trace by name, in the order they ran."""
    return {name: site for name, site in trace.nodes.items() if is_latent(site)}


#: per-example variational parameters of a guide, ``{name: (N, ...)}``
#: (:meth:`Program.local_parameters`)
LocalParameters = dict[str, torch.Tensor]


class LatentSpace(Protocol):
    """A single latent site ``"z"`` with a registered prior and guide family: what the
    latent-space figures and the KL per dimension read (:meth:`Program.latent_space`).
    :class:`~pyrovae.VAE` is one."""

    latent_dim: int
    prior: Prior
    guide_family: GuideFamily

    def posterior(self, x: torch.Tensor) -> Any:
        """q(z|x) for data ``(*batch, data_dim)``, event shape ``(latent_dim,)``."""
        ...

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z] for latents ``(*batch, latent_dim)``: ``(*batch, data_dim)``."""
        ...


class Program(nn.Module, abc.ABC):
    """A model pyrovae can train, score and draw: two Pyro programs, and what it may add.

    **Required** (abstract):

    * :meth:`model` ``(x, y=None)``: p(x, latents), the examples in ``pyro.plate("data", N)``
      (dim -1), the observations at the sample site ``"x"`` (``obs=x``, ``x`` of shape
      ``(N, data_dim)``); every other sample site is a latent variable (:func:`is_latent`);
    * :meth:`guide` ``(x, y=None)``: q(latents | x) over the same plate, sampling every latent
      site of the model (continuous sites reparameterized for ``analytic_kl`` and ``iwae``;
      discrete sites marked for parallel enumeration, trained by ``trace_enum_elbo``);
    * the learned state is ``parameters()`` (a ``pyro.param`` outside the module is not
      trained) and ``state_dict()`` is what a checkpoint holds.

    **Free**, each a documented default that a subclass may override:

    ===========================  ==============================================================
    :attr:`data_dim`             ``None``: data of any width (taken from the data)
    :attr:`image_shape`          ``None``: ``(data_dim,)`` (:meth:`example_shape`)
    :attr:`num_classes`          ``None``: not label-conditional
    :attr:`device`               the device of the first parameter or buffer (CPU without any)
    :meth:`check_data`           shape ``(N, data_dim)``, the parameters' dtype and device,
                                 :meth:`check_values`, integer labels ``(N,)`` in range
    :meth:`check_values`         finite values
    :meth:`model_labels`         the programs get every label ``y``
    :meth:`sample`               the mean of site ``"x"`` in a run of the model from its prior
    :meth:`draw`                 the value of site ``"x"`` in a run of the model from its prior
    :meth:`reconstruct`          the mean of site ``"x"`` replayed on one draw of the guide
    :meth:`describe`             the class, parameter count and latent sites of the guide
    :meth:`param_store_registration`  nothing to switch (the programs run as written)
    :meth:`quiet`                Pyro validation and param-store registration off
    :meth:`evaluating`           eval mode and :meth:`quiet`, both restored after
    :attr:`figure_kinds`         samples, reconstructions, curves
    :meth:`latent_space`         none: refuses the figures of one latent space with the reason
    :meth:`classes`              :attr:`num_classes`, or a refusal with the reason
    :meth:`likelihood_component`  ``None``: no registered likelihood (no bits per dimension)
    :meth:`local_parameters`     none: refuses the inference-gap decomposition with the reason
    :meth:`local_guide`          none: as :meth:`local_parameters`
    :attr:`trains_with_any_objective`  ``False``: each objective is checked against a run
    :attr:`rebuilt_from_config`  ``False``: a run records the class, to be given again
    :attr:`module`               ``self``: the module a user gave (see :func:`as_program`)
    ===========================  ==============================================================
    """

    #: elements per example (the width of ``x``); ``None``: any width
    data_dim: int | None = None
    #: the shape of one example, ``(C, H, W)`` for images or ``(D,)``; ``None``: unknown
    image_shape: tuple[int, ...] | None = None
    #: the figures this model has (``pyrovae plot --kind``)
    figure_kinds: ClassVar[tuple[str, ...]] = PROGRAM_KINDS
    #: whether every registered objective can train the model as it is; ``False``: the
    #: trainer first checks its objective against a run of the programs
    #: (:meth:`pyrovae.infer.Objective.check_program`)
    trains_with_any_objective: ClassVar[bool] = False
    #: whether the factory rebuilds this model from a run's config (pyrovae's own models), so
    #: that a run directory need not record its class; ``False``: a module given in Python,
    #: which ``load_run`` and ``resume`` must be given again (unless ``model.program``
    #: names its factory)
    rebuilt_from_config: ClassVar[bool] = False

    # ------------------------------------------------------------------ the programs
    @abc.abstractmethod
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        """p(x, latents): the observations ``x`` ``(N, data_dim)`` at site ``"x"``."""

    @abc.abstractmethod
    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        """q(latents | x) over the model's latent sites."""

    @property
    def module(self) -> nn.Module:
        """The module a user gave pyrovae: ``self``, or the module :func:`as_program`
        adapted. Public functions that return a model return this."""
        return self

    # ------------------------------------------------------------------ where and what
    def _reference(self) -> torch.Tensor | None:
        return next(itertools.chain(self.parameters(), self.buffers()), None)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters (or buffers) are; CPU for a model without any."""
        reference = self._reference()
        return torch.device("cpu") if reference is None else reference.device

    @property
    def dtype(self) -> torch.dtype | None:
        """The floating dtype of the model's parameters (or buffers); ``None`` without any."""
        reference = self._reference()
        return None if reference is None else reference.dtype

    @property
    def num_classes(self) -> int | None:
        """The classes of a label-conditional model (``sample(num, y)`` draws classes 0 to
        ``num_classes - 1``, and labels are checked to be among them); ``None`` (the
        default): not label-conditional."""
        return None

    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example, for pictures: :attr:`image_shape`, else
        ``(data_dim,)``; :class:`ConfigError` when the model knows neither."""
        if self.image_shape:
            return tuple(self.image_shape)
        if self.data_dim is None:
            raise ConfigError(
                f"{self._name()} has neither image_shape nor data_dim: give it an "
                "image_shape attribute (e.g. (1, 28, 28)) to draw pictures"
            )
        return (self.data_dim,)

    def _name(self) -> str:
        return type(self.module).__name__

    # ------------------------------------------------------------------ data
    def check_data(
        self, x: object, y: object = None, *, name: str = "x", grey_levels: bool = False
    ) -> None:
        """Raise :class:`~pyrovae.errors.DataError` unless ``x`` (and labels ``y``) are data
        the model can score: a ``(N, data_dim)`` tensor (``N >= 1``; any width without a
        :attr:`data_dim`) of the parameters' dtype, on their device, whose values pass
        :meth:`check_values`; ``y`` ``None`` or ``(N,)`` integer labels on the same device,
        among the :attr:`num_classes` classes where the model has them.

        Reads values back from the device: the public entry points call it once per call,
        never per training step."""
        dim = self.data_dim
        width = dim if dim is not None else "D"
        if not isinstance(x, torch.Tensor):
            raise DataError(
                f"{name} must be a torch.Tensor of shape (N, {width}), got a {type(x).__name__}"
            )
        if x.dim() != 2 or x.shape[0] == 0 or (dim is not None and x.shape[1] != dim):
            row = f"one row of {dim} elements" if dim is not None else "one row"
            raise DataError(
                f"{name} must have shape (N, {width}) with N >= 1 ({row} per example; flatten "
                f"images first), got shape {tuple(x.shape)}"
            )
        reference = self._reference()
        if reference is not None and x.dtype != reference.dtype:
            raise DataError(
                f"{name} has dtype {x.dtype}, but the model's parameters are {reference.dtype}; "
                f"convert it with {name}.to({reference.dtype})"
            )
        if reference is not None and x.device != reference.device:
            raise DataError(
                f"{name} is on {x.device}, but the model is on {reference.device}; move it "
                f"with {name}.to({str(reference.device)!r})"
            )
        self.check_values(x, name=name, grey_levels=grey_levels)
        if y is not None:
            self._check_labels(x, y, name)

    def _check_labels(self, x: torch.Tensor, y: object, name: str) -> None:
        if not isinstance(y, torch.Tensor) or (
            y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool
        ):
            raise DataError(
                f"the labels y must be an integer tensor of shape ({x.shape[0]},), got "
                f"{y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}"
            )
        if y.shape != (x.shape[0],):
            raise DataError(
                f"the labels y must have shape ({x.shape[0]},), one per example of {name}, "
                f"got shape {tuple(y.shape)}"
            )
        if y.device != x.device:
            raise DataError(f"the labels y are on {y.device}, but {name} is on {x.device}")
        if self.num_classes is not None:
            bad = (y < 0) | (y >= self.num_classes)
            if bool(bad.any()):
                raise DataError(
                    f"the labels y must be classes 0 to {self.num_classes - 1}, but they hold "
                    f"{int(y[bad][0])}"
                )

    def check_values(self, x: torch.Tensor, *, name: str = "x", grey_levels: bool = False) -> None:
        """Raise :class:`~pyrovae.errors.DataError` when the values of ``x`` are not data of
        the model (default: when any is NaN or infinite). ``grey_levels``: ``x`` holds
        probabilities in [0, 1] that are binarized afresh each epoch, not the data itself."""
        if not bool(x.isfinite().all()):
            raise DataError(f"{name} holds NaN or infinite values")

    def model_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The labels the programs get (default: every label ``y``)."""
        return y

    # ------------------------------------------------------------------ running the programs
    def param_store_registration(self, enabled: bool) -> contextlib.AbstractContextManager[Any]:
        """Within the block, ``model``/``guide`` do (``True``) or do not (``False``) register
        the module's parameters in Pyro's param store (default: the programs run as written;
        :meth:`pyrovae.VAE.param_store_registration` switches its ``pyro.module`` calls)."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Run the programs without Pyro validation and without param-store registration:
        what evaluation needs (AIS calls the model thousands of times)."""
        with pyro.validation_enabled(False), self.param_store_registration(False):
            yield

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode and :meth:`quiet` programs for the block; the mode is restored after."""
        was_training = self.training
        self.eval()
        try:
            with self.quiet():
                yield
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ generation
    def _template(self, num: int) -> torch.Tensor:
        if self.data_dim is None or self.dtype is None:
            raise ConfigError(
                f"{self._name()} has no sample(num) method and no data_dim to run its model "
                "from the prior with: give it one of them to draw samples"
            )
        return torch.zeros(num, self.data_dim, dtype=self.dtype, device=self.device)

    @torch.no_grad()
    def sample(self, num: int, y: Any = None) -> torch.Tensor:
        """E[x | latents] of ``num`` runs of the model from its prior: ``(num, data_dim)``
        (``y``: the class of every draw, for label-conditional models)."""
        if y is not None:
            raise ConfigError(
                f"{self._name()} has no sample(num, y) method: it cannot draw samples of a class"
            )
        with self.quiet():
            trace = poutine.trace(poutine.uncondition(self.model)).get_trace(
                self._template(num), None
            )
        return _site_mean(trace)

    @torch.no_grad()
    def draw(self, num: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """``num`` draws x ~ p(x) (latents from the prior, then x from the likelihood):
        ``(num, data_dim)``, the value of site ``"x"`` in runs of the model from its prior
        (``y``: ``(num,)`` labels, for label-conditional models)."""
        check_value(num, PositiveInt, "num")
        with self.quiet():
            trace = poutine.trace(poutine.uncondition(self.model)).get_trace(self._template(num), y)
        value = trace.nodes["x"]["value"]
        assert isinstance(value, torch.Tensor)
        return value

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | latents] for one draw of the guide per example: ``(N, data_dim)``."""
        with self.quiet():
            guide_trace = poutine.trace(self.guide).get_trace(x, None)
            trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(x, None)
        return _site_mean(trace)

    # ------------------------------------------------------------------ description
    def describe(self) -> str:
        """The model in words: its class, parameter count and (with a :attr:`data_dim`) the
        latent sites of one run of its guide."""
        num_params = sum(p.numel() for p in self.parameters())
        cls = type(self.module)
        lines = [f"program {cls.__module__}.{cls.__qualname__}: {num_params:,} parameters"]
        doc = (cls.__doc__ or "").strip().splitlines()
        if doc:
            lines.append(f"  {doc[0]}")
        try:
            with self.quiet(), torch.no_grad():
                trace = poutine.trace(self.guide).get_trace(self._template(1), None)
        except Exception:  # a description never fails on a program it cannot run
            return "\n".join(lines)
        for name, site in latent_sites(trace).items():
            fn = site["fn"]
            how = " (enumerated)" if site["infer"].get("enumerate") else ""
            lines.append(
                f"  latent {name!r}: q = {type(fn).__name__}, event shape "
                f"{tuple(fn.event_shape)}{how}"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ what it offers
    def latent_space(self, purpose: str) -> LatentSpace:
        """The model's single latent space, for ``purpose`` (e.g. ``"the 'latent' figure"``);
        :class:`ConfigError` with the reason when it has none (the default)."""
        raise ConfigError(
            f"{purpose} reads the latent space of pyrovae's VAE (a single site 'z' with its "
            f"prior and guide); a program module of class {self._name()} has the figures "
            f"{', '.join(self.figure_kinds)}"
        )

    def classes(self, purpose: str) -> int:
        """:attr:`num_classes` of a label-conditional model, for ``purpose`` (e.g. ``"the
        classes figure"``); :class:`ConfigError` with the reason for any other model."""
        if self.num_classes is None:
            raise ConfigError(
                f"{purpose} draws samples of each class, but {self._name()} is not "
                "label-conditional (it has no num_classes)"
            )
        return self.num_classes

    def likelihood_component(self) -> Likelihood | None:
        """The registered likelihood of site ``"x"`` (its data kind and levels decide bits per
        dimension); ``None``: the model declares none."""
        return None

    # ------------------------------------------------------------------ local inference
    def local_parameters(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LocalParameters:
        """The per-example variational parameters of the guide at ``x`` ``(N, data_dim)``:
        ``{name: (N, ...)}``, such that :meth:`local_guide` given them is the guide itself
        (the amortized guide is the start of a per-example optimization;
        :func:`pyrovae.inference_gaps`). Default: :class:`ConfigError` with the reason."""
        raise ConfigError(
            f"the inference gaps optimize the guide's variational parameters per example, but "
            f"{self._name()} does not declare them: give it methods local_parameters(x, y) "
            "(the encoder's outputs, {name: (N, ...)}) and local_guide(params, x, y) (the "
            f"guide with those in place of the encoder's outputs); see {DOCS}"
        )

    def local_guide(
        self, params: LocalParameters, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> Any:
        """The guide's program with per-example variational parameters ``params`` (as
        :meth:`local_parameters` returns them) in place of what its encoder computes from
        ``x``: the same latent sites, in the same ``pyro.plate("data", N)``, and no parameter
        of the module registered in Pyro's param store. Default: :class:`ConfigError`."""
        self.local_parameters(x, y)  # refuses with the reason


def _site_mean(trace: Any) -> torch.Tensor:
    fn = trace.nodes["x"]["fn"]
    try:
        return fn.mean
    except NotImplementedError:
        return trace.nodes["x"]["value"]


# ---------------------------------------------------------------------- the boundary
#: the optional members a module of one's own may have, and what it gets without them
OPTIONAL: dict[str, str] = {
    "data_dim": "taken from the data",
    "image_shape": "taken from the data ((data_dim,) without it)",
    "check_data": "x checked for shape (N, data_dim), the parameters' dtype and device, and "
    "finite values; y for integer labels (N,)",
    "model_labels": "the programs get every label y",
    "sample": "the mean of site 'x' in a run of the model from its prior",
    "reconstruct": "the mean of site 'x' in the model replayed on one draw of the guide",
    "describe": "the program's class, parameter count and sites",
    "param_store_registration": "the programs run as written",
    "local_parameters": "no inference gaps (the guide's per-example parameters are unknown)",
    "local_guide": "no inference gaps (with local_parameters)",
}


def check_program(module: object, what: str = "the model") -> None:
    """Raise :class:`~pyrovae.errors.ConfigError` naming what ``module`` lacks to be a
    program: an ``nn.Module`` with callable ``model`` and ``guide`` (the members of
    :data:`OPTIONAL` are not required)."""
    missing = [name for name in ("model", "guide") if not callable(getattr(module, name, None))]
    problems = []
    if not isinstance(module, nn.Module):
        problems.append(f"it is a {type(module).__name__}, not a torch.nn.Module")
    if missing:
        problems.append(
            "it has no method " + " and no method ".join(f"{m}(x, y=None)" for m in missing)
        )
    if problems:
        raise ConfigError(
            f"{what} cannot be trained or scored by pyrovae: {'; '.join(problems)}. A program "
            "is an nn.Module with Pyro programs model(x, y=None) and guide(x, y=None) over "
            f'pyro.plate("data") with observations at site "x" (see {DOCS})'
        )


class _Adapted(Program):
    """A module of one's own as a :class:`Program`: its programs, and those of its optional
    members (:data:`OPTIONAL`) it has, read once here; the contract's defaults for the rest.

    Its ``state_dict`` is the module's own, so checkpoints hold the module's keys."""

    def __init__(self, module: nn.Module, image_shape: tuple[int, ...] | None) -> None:
        super().__init__()
        self.wrapped = module
        own = {name: getattr(module, name, None) for name in OPTIONAL}
        self._own = {name: member for name, member in own.items() if callable(member)}
        data_dim = own["data_dim"] if isinstance(own["data_dim"], int) else None
        shape = tuple(own["image_shape"]) if own["image_shape"] else image_shape
        if data_dim is None and shape:
            data_dim = _product(shape)
        self.data_dim, self.image_shape = data_dim, shape

    @property
    def module(self) -> nn.Module:
        return self.wrapped

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        return self.wrapped.model(x, y)  # type: ignore[operator]

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        return self.wrapped.guide(x, y)  # type: ignore[operator]

    def check_data(
        self, x: object, y: object = None, *, name: str = "x", grey_levels: bool = False
    ) -> None:
        if "check_data" in self._own:
            self._own["check_data"](x, y, name=name, grey_levels=grey_levels)
        else:
            super().check_data(x, y, name=name, grey_levels=grey_levels)

    def model_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        own = self._own.get("model_labels")
        return own(y) if own else y

    def param_store_registration(self, enabled: bool) -> contextlib.AbstractContextManager[Any]:
        own = self._own.get("param_store_registration")
        return own(enabled) if own else contextlib.nullcontext()

    def local_parameters(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LocalParameters:
        own = self._own.get("local_parameters")
        return (
            dict(own(x, y))
            if own and "local_guide" in self._own
            else super().local_parameters(x, y)
        )

    def local_guide(
        self, params: LocalParameters, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> Any:
        own = self._own.get("local_guide")
        return (
            own(params, x, y)
            if own and "local_parameters" in self._own
            else super().local_guide(params, x, y)
        )

    @torch.no_grad()
    def sample(self, num: int, y: Any = None) -> torch.Tensor:
        own = self._own.get("sample")
        if own is None:
            return super().sample(num, y)
        return own(num) if y is None else own(num, y=y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        own = self._own.get("reconstruct")
        return own(x) if own else super().reconstruct(x)

    def describe(self) -> str:
        own = self._own.get("describe")
        return str(own()) if own else super().describe()

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrapped.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self.wrapped.load_state_dict(state_dict, strict=strict, assign=assign)

    def __repr__(self) -> str:
        return f"as_program({self.wrapped!r})"


def _product(shape: tuple[int, ...]) -> int:
    size = 1
    for n in shape:
        size *= n
    return size


def as_program(
    module: object, image_shape: tuple[int, ...] | None = None, *, what: str = "the model"
) -> Program:
    """``module`` as a :class:`Program`: itself when it is one, else adapted once (its
    ``model``, ``guide`` and the :data:`OPTIONAL` members it has; the contract's defaults for
    the rest). ``image_shape``: the shape of the data's examples, for a module that declares
    neither ``image_shape`` nor ``data_dim``.

    Raises:
        ConfigError: ``module`` is not a program (:func:`check_program`), naming ``what``.
    """
    if isinstance(module, Program):
        return module
    check_program(module, what)
    assert isinstance(module, nn.Module)
    return _Adapted(module, tuple(image_shape) if image_shape else None)
