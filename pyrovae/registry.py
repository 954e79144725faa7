"""Named registries of components, and validated construction from config mappings.

A component (prior, likelihood, network, guide, objective, data set) is a class registered
under a short name. Its *config parameters* are the keyword-only arguments of its
``__init__``, with type annotations and defaults; arguments listed in ``context`` are supplied
by the library (e.g. ``latent_dim``) and cannot be set from a config.

Numeric parameters declare their range in the annotation, ``Annotated[int, Range(min=1)]``,
and :func:`check_value` checks type and range in one place for every component, every config
key and every public function argument, naming the key in its :class:`ConfigError`. Checks
that relate several parameters stay in the constructor, which raises :class:`ConfigError`
about its own parameters; :meth:`Registry.build` prefixes the message with the config key.

Example::

    PRIORS = Registry("prior", context=("latent_dim",))

    @PRIORS.register("mog")
    class MixtureOfGaussiansPrior(Prior):
        def __init__(self, *, latent_dim: int, components: PositiveInt = 10) -> None: ...

    PRIORS.build({"type": "mog", "components": 5}, key="model.prior", latent_dim=50)
"""

from __future__ import annotations

import inspect
import math
import reprlib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")

_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class Range:
    """The declared range of a numeric parameter, used as ``Annotated[int, Range(min=1)]``.

    Args:
        min: smallest allowed value (inclusive), or ``None``.
        gt: the value must be greater than this (exclusive), or ``None``.
        lt: the value must be less than this (exclusive), or ``None``.
        max: largest allowed value (inclusive), or ``None``.
        note: what the bounds mean, appended to the error message (e.g. ``"0 means all"``).

    Every range holds finite numbers only: NaN and infinities fail every range (NaN also fails
    every comparison).
    """

    min: float | None = None
    gt: float | None = None
    lt: float | None = None
    max: float | None = None
    note: str = ""

    def contains(self, value: float) -> bool:
        return (
            (isinstance(value, int) or math.isfinite(value))
            and (self.min is None or value >= self.min)
            and (self.gt is None or value > self.gt)
            and (self.lt is None or value < self.lt)
            and (self.max is None or value <= self.max)
        )

    def describe(self) -> str:
        """The range in words: ``"at least 1"``, ``"positive"``, ``"in (0, 0.5)"``..."""
        if self.max is not None:
            bounded_below = self.min is not None or self.gt is not None
            lower = Range(min=self.min, gt=self.gt).describe() + " and " if bounded_below else ""
            text = f"{lower}at most {_number(self.max)}"
        elif self.gt is not None and self.lt is not None:
            text = f"in ({self.gt:g}, {self.lt:g})"
        elif self.gt is not None:
            text = "positive" if self.gt == 0 else f"greater than {self.gt:g}"
        elif self.min is not None:
            text = f">= {self.min:g}" if self.min == 0 else f"at least {self.min:g}"
            if self.lt is not None:
                text += f" and less than {self.lt:g}"
        elif self.lt is not None:
            text = f"less than {self.lt:g}"
        else:
            text = "any number"
        return f"{text} ({self.note})" if self.note else text


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 3, 8, 8
_SHORT.maxstring = _SHORT.maxother = 60


def show(value: Any) -> str:
    """``repr(value)``, shortened for an error message (a config value can be huge)."""
    return _SHORT.repr(value)


def _number(bound: float) -> str:
    """A bound in words: integers in full (``4294967295``), other numbers short (``0.5``)."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


#: an integer of at least 1 (sizes, counts)
PositiveInt = Annotated[int, Range(min=1)]
#: an integer of at least 0
NonNegativeInt = Annotated[int, Range(min=0)]
#: a number greater than 0 (scales, rates)
PositiveFloat = Annotated[float, Range(gt=0)]
#: a number of at least 0
NonNegativeFloat = Annotated[float, Range(min=0)]
#: a random seed: what every generator pyrovae seeds accepts (Pyro also seeds NumPy, whose
#: seeds are 32-bit)
Seed = Annotated[int, Range(min=0, max=2**32 - 1, note="a 32-bit seed")]


class _RangeError(ConfigError):
    """A value of the right type outside its declared range."""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(option) for option in typing.get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def check_value(value: Any, annotation: Any, key: str) -> Any:
    """Return ``value`` checked (and, for int -> float and list -> tuple, converted) against
    ``annotation``, including a declared :class:`Range`; raise :class:`ConfigError` naming
    ``key`` when it does not fit.

    Example::

        check_value(5, PositiveInt, "num_samples")    # 5
        check_value(0, PositiveInt, "num_samples")    # ConfigError: ... must be at least 1
    """
    if annotation is Any or annotation is _MISSING:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        value = check_value(value, args[0], key)
        for bound in args[1:]:
            if isinstance(bound, Range) and not bound.contains(value):
                finite = "finite and " if isinstance(value, float) and math.isinf(value) else ""
                raise _RangeError(f"{key} = {show(value)} must be {finite}{bound.describe()}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return check_value(value, option, key)
            except _RangeError:
                raise  # the right type, out of range: say so rather than "wrong type"
            except ConfigError:
                continue
        raise ConfigError(
            f"{key} = {show(value)} has the wrong type: expected {_type_name(annotation)}"
        )
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(
            f"{key} = {show(value)} is not a valid choice; expected one of "
            + ", ".join(repr(a) for a in args)
        )
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key} = {show(value)} has the wrong type: expected None")
    if origin in (tuple, list) or annotation in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"{key} = {show(value)} has the wrong type: expected a list "
                f"({_type_name(annotation)})"
            )
        item_type = args[0] if args else Any
        return tuple(check_value(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and not abs(value) < 2**1023:  # no float holds it
                raise _RangeError(f"{key} = {show(value)} must be a finite number")
            return float(value)
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**63:  # what a config (TOML) and torch can hold
                raise _RangeError(f"{key} = {show(value)} must fit in 64 bits (|n| < 2**63)")
            return value
    elif isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ConfigError(
        f"{key} = {show(value)} has the wrong type: expected {_type_name(annotation)}, "
        f"got {type(value).__name__}"
    )


class Registry(Generic[T]):
    """A mapping from names to component classes of one kind (``"prior"``, ``"likelihood"``...).

    Args:
        kind: what the components are, used in error messages.
        context: names of constructor arguments the library supplies itself; they are not
            config parameters.
    """

    #: the first registry of each kind: the one configs use (they find it here, without
    #: importing the modules that define the components)
    _by_kind: ClassVar[dict[str, Registry[Any]]] = {}

    def __init__(self, kind: str, context: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.context = frozenset(context)
        self._classes: dict[str, type[T]] = {}
        Registry._by_kind.setdefault(kind, self)

    @classmethod
    def of_kind(cls, kind: str) -> Registry[Any]:
        """The (first) registry of ``kind``: ``"prior"``, ``"likelihood"``, ``"encoder"``,
        ``"decoder"``, ``"guide"``, ``"objective"`` or ``"dataset"`` for pyrovae's own,
        each created where its components are defined (``import pyrovae`` creates them)."""
        return cls._by_kind[kind]

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering ``cls`` under ``name``; sets ``cls.type_name``."""

        def decorator(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            cls.type_name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return decorator

    def unregister(self, name: str) -> type[T]:
        """Remove and return the class registered as ``name`` (a plugin withdrawing a
        component, a test cleaning up after itself); :class:`ConfigError` listing the choices
        if there is none."""
        cls = self.get(name)
        del self._classes[name]
        return cls

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def get(self, name: Any, key: str = "type") -> type[T]:
        """The class registered as ``name``; :class:`ConfigError` listing the choices if none."""
        if not isinstance(name, str) or name not in self._classes:
            raise ConfigError(
                f"{key} = {show(name)} is not a known {self.kind}; valid choices: "
                + ", ".join(self.names())
            )
        return self._classes[name]

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The config parameters of component ``name`` (constructor keywords minus context).

        A constructor that takes ``**kwargs`` also accepts its base class's parameters (e.g.
        every objective inherits ``beta`` from :class:`~pyrovae.infer.objectives.Objective`)."""
        return {
            pname: p
            for pname, p in _init_parameters(self.get(name)).items()
            if pname not in self.context
        }

    def takes(self, name: str, argument: str) -> bool:
        """Whether component ``name``'s constructor takes ``argument`` (a config parameter or
        a context argument, e.g. ``"image_shape"`` for a network of images)."""
        return argument in _init_parameters(self.get(name))

    def resolve(self, spec: Any, key: str) -> dict[str, Any]:
        """Validate ``spec`` (a mapping with ``type`` and parameters, or a bare name) and return
        it with every parameter present: defaults filled in, values type-checked."""
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"{key} must be a table with a 'type' key (one of {', '.join(self.names())}), "
                f"got {show(spec)}"
            )
        if "type" not in spec:
            raise ConfigError(f"{key} is missing 'type'; valid choices: {', '.join(self.names())}")
        name = spec["type"]
        self.get(name, key=f"{key}.type")
        params = self.parameters(name)
        resolved: dict[str, Any] = {"type": name}
        for pkey, value in spec.items():
            if pkey == "type":
                continue
            if pkey not in params:
                valid = ", ".join(sorted(params)) or "(none)"
                raise ConfigError(
                    f"{key}.{pkey} is not a parameter of {self.kind} {name!r}; "
                    f"valid parameters: {valid}"
                )
            resolved[pkey] = check_value(value, params[pkey].annotation, f"{key}.{pkey}")
        for pname, p in params.items():
            if pname in resolved:
                continue
            if p.default is _MISSING:
                raise ConfigError(f"{key}.{pname} is required for {self.kind} {name!r}")
            default = p.default
            resolved[pname] = list(default) if isinstance(default, tuple) else default
        # tuples are an implementation detail of checking; configs hold lists
        return {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()}

    def build(self, spec: Any, key: str, **context: Any) -> T:
        """Construct the component described by ``spec`` (validated as in :meth:`resolve`)."""
        resolved = self.resolve(spec, key)
        cls = self.get(resolved.pop("type"))
        params = self.parameters(cls.type_name)  # type: ignore[attr-defined]
        kwargs = {
            k: check_value(v, params[k].annotation, f"{key}.{k}") for k, v in resolved.items()
        }
        accepted = _init_parameters(cls)
        kwargs.update({k: v for k, v in context.items() if k in accepted})
        try:
            return cls(**kwargs)
        except ConfigError as exc:  # a check relating several parameters: name the component
            raise ConfigError(f"{key}.type = {cls.type_name!r}: {exc}") from None  # type: ignore[attr-defined]


def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters of ``cls.__init__`` with resolved annotations; when it takes
    ``**kwargs``, followed by those of the next class up the MRO that defines ``__init__``."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        init = vars(klass)["__init__"]
        hints = typing.get_type_hints(init, include_extras=True)
        forwards = False
        for pname, p in inspect.signature(init).parameters.items():
            if p.kind is p.VAR_KEYWORD:
                forwards = True
            elif pname != "self" and p.kind is not p.VAR_POSITIONAL and pname not in params:
                params[pname] = p.replace(annotation=hints.get(pname, p.annotation))
        if not forwards:
            break
    return params
