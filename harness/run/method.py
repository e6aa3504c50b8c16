"""The method hook protocol: how a regularizer or baseline plugs into the training loop.

The loop (``harness.run.train``) never names a method. It calls these hooks, in this order, on any registered method:

    prepare(ctx)                      once, before the optimiser exists: snapshot weights, build a frozen copy,
                                      inject modules, compute a Fisher mask, cache targets
    param_groups(model, lr, wd)       the main optimiser's parameter groups (default: decay / no-decay split)
    num_epochs(base_epochs)           a recipe may define its own length (STD++ trains 2x longer)
    pre_phase_epochs()                after prepare: leading epochs that are not part of the main phase (MVCR's AE
                                      warm-up); the loop's dev evaluations are spread over the main phase only
    on_epoch_start(model, epoch)      phases: freeze the encoder (LP-FT stage 1, MVCR AE warm-up), unfreeze later
    loss(model, batch, outputs)       extra loss terms, by name; may run extra forwards (SMART, R3F)
    after_backward(model)             gradient surgery (ChildTuning masks)
    after_step(model)                 after the main optimiser step (a method's own optimiser, decoupled decay)
    finalize(model)                   before the test evaluation: unplug injected modules, merge Mixout

Hyperparameters live in a dataclass (``config_class``): every hyperparameter is an explicit field with help text,
so the Optuna search space, the logged parameters and the CLI ``--param`` overrides derive from one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import torch
from optuna.distributions import BaseDistribution, FloatDistribution

from ..core.errors import ConfigError

# The packages whose modules define built-in methods (each module calls register_method at import), and the
# entry-point group of third-party ones; `regbench ls methods` reads the same modules without importing them.
from ..core.plugins import BUILTIN_METHOD_PACKAGES, ENTRY_POINT_GROUP
from ..core.registry import Registry

if TYPE_CHECKING:
    from .model import TaskModel, TaskOutput


# Every method tunes the learning rate in this range (METHODS.md); a method may narrow it (STD++ does).
SHARED_LR_RANGE = FloatDistribution(1e-5, 5e-4, log=True)


def hparam(default: Any, help: str) -> Any:
    """A method hyperparameter: a dataclass field whose help text shows in ``regbench ls methods -v``."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class MethodConfig:
    """Base class of every method's hyperparameters (subclasses add fields with :func:`hparam`)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainContext:
    """What ``prepare`` may look at. ``optimizer`` is filled in once the loop has built it."""

    model: TaskModel
    task: Any  # benchmarks.taskspec.TaskSpec (kept untyped here to avoid a harness → benchmarks import cycle)
    train_batches: Iterable[dict[str, torch.Tensor]]  # one pass over the training data, already on the device
    device: torch.device
    lr: float
    total_steps: int
    seed: int
    optimizer: torch.optim.Optimizer | None = None
    autocast: Any = None  # a context-manager factory for the forward passes a method runs itself
    steps_per_epoch: int = 0  # optimiser steps per epoch (phases measured in epochs convert through it)
    warmup_ratio: float = 0.0  # the loop's LR warm-up ratio (a method restarting the schedule for a phase reuses it)


ConfigT = TypeVar("ConfigT", bound=MethodConfig)


class Method(Generic[ConfigT]):
    """Base class with no-op hooks. Subclasses set ``name``, ``config_class`` and override what they need; a
    subclass names its config type as the parameter (``class Smart(Method[SmartConfig])``) so that type checkers
    know ``self.config``'s fields."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    # Step time relative to STD, as measured by benchmarks/perf (results/perf/methods.md); `regbench plan` uses it.
    relative_step_cost: ClassVar[float] = 1.0
    # The search space, declared: the learning rate's range (a method may narrow it) and the method's own tuned
    # hyperparameters, in the order trials draw them (the common-random-number start draws by name and number).
    lr_range: ClassVar[BaseDistribution] = SHARED_LR_RANGE
    tuned: ClassVar[dict[str, BaseDistribution]] = {}

    def __init__(self, config: ConfigT | None = None) -> None:
        self.config: ConfigT = config if config is not None else cast(ConfigT, self.config_class())
        self.ctx: TrainContext | None = None
        self.logs: dict[str, float] = {}  # per-step diagnostics the loop averages and logs (not loss terms)

    def main_optimizer(self) -> torch.optim.Optimizer:
        """The loop's optimiser (there from the first ``on_epoch_start`` on)."""
        if self.ctx is None or self.ctx.optimizer is None:
            raise RuntimeError(f"{self.name}: the main optimiser is not built yet (prepare() runs before it)")
        return self.ctx.optimizer

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Method[Any]:
        """Build from a flat mapping of hyperparameters; unknown names fail with the known ones listed."""
        fields = {f.name: f for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"method {cls.name!r} has no parameter {unknown[0]!r} (known: {known})")
        values = {name: _coerce(fields[name], value, cls.name) for name, value in params.items()}
        return cls(cast(Any, cls.config_class(**values)))

    @classmethod
    def search_space(cls) -> dict[str, BaseDistribution]:
        """Optuna distributions of the tuned hyperparameters: ``lr`` always, plus the method's own."""
        return {"lr": cls.lr_range, **cls.tuned}

    # ---- hooks --------------------------------------------------------------------------------------------
    def num_epochs(self, base_epochs: int) -> int:
        return base_epochs

    def phase_note(self, base_epochs: int) -> str:
        """What this method's run does beyond STD's schedule (an extra or longer phase), in words, for ``plan``,
        the record (``train_info.phases``) and the leaderboard; "" when it trains exactly as STD does."""
        return ""

    def pre_phase_epochs(self) -> int:
        """Leading epochs that precede the main phase (MVCR's AE-only warm-up). The loop evaluates dev at the same
        points of every method's main phase (TrainConfig.evals), so an extra phase buys no extra looks at dev."""
        return 0

    def prepare(self, ctx: TrainContext) -> None:
        self.ctx = ctx

    def param_groups(self, model: TaskModel, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        return decay_groups(model.named_parameters(), weight_decay)

    def on_epoch_start(self, model: TaskModel, epoch: int) -> None:
        pass

    def loss(self, model: TaskModel, batch: dict[str, torch.Tensor], outputs: TaskOutput) -> dict[str, torch.Tensor]:
        return {}

    def after_backward(self, model: TaskModel) -> None:
        pass

    def after_step(self, model: TaskModel) -> None:
        pass

    def finalize(self, model: TaskModel) -> None:
        pass

    def frozen_modules(self) -> list[torch.nn.Module]:
        """Reference modules the method holds frozen (REPINA's pretrained copy): the conformance suite checks they
        get no gradient, stay in eval mode and never change."""
        return []


def linear_schedule_factor(step: int, total: int, warmup: int) -> float:
    """transformers' ``get_linear_schedule_with_warmup`` factor at ``step``, for a method that restarts the schedule
    of a running optimiser at a phase boundary (LP-FT's stage 2, MVCR's phase 2): linear warm-up, then linear decay."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def private_generator(seed: int, salt: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A method's own random stream (``seed ^ salt``): drawing from it never shifts the global stream that drives
    dropout, so a method's masks, noise or initialisation leave the rest of the run unchanged."""
    return torch.Generator(device=device).manual_seed(seed ^ salt)


def decay_groups(named_params: Iterable[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: biases and LayerNorm weights get no decay (the BERT fine-tuning convention)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in named_params:
        if not param.requires_grad:
            continue
        (no_decay if _is_no_decay(name) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def _is_no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name


def _coerce(f: dataclasses.Field, value: Any, method: str) -> Any:
    """CLI values arrive as strings; convert them to the field's declared type."""
    default = f.default
    if isinstance(value, str) and not isinstance(default, str):
        try:
            if isinstance(default, bool):
                if value.lower() not in {"true", "false", "1", "0"}:
                    raise ValueError(value)
                return value.lower() in {"true", "1"}
            if isinstance(default, int):
                return int(value)
            if isinstance(default, float):
                return float(value)
        except ValueError:
            raise ConfigError(
                f"method {method!r} parameter {f.name!r} expects a {type(default).__name__}, got {value!r}"
            ) from None
    return value


def _load_builtin_methods() -> None:
    """Import every module of the built-in method packages (each registers itself), then third-party entry points.

    Discovery by package scan means adding a method is one new module in ``baselines/`` or ``regularizers/``: no
    central list to edit (and no merge conflicts between method authors).
    """
    import importlib
    import pkgutil
    from importlib.metadata import entry_points

    for package_name in BUILTIN_METHOD_PACKAGES:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


METHODS: Registry[type[Method]] = Registry("method", loader=_load_builtin_methods)


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by name (``regbench run --method NAME``)."""
    if not cls.name:
        raise ConfigError(f"{cls.__qualname__} must set a class attribute 'name' to be registered")
    METHODS.register(cls.name, cls)
    return cls


def get_method(name: str, params: Mapping[str, Any] | None = None) -> Method:
    """Look a method up by name and build it with the given hyperparameters (defaults for the rest)."""
    return METHODS.get(name).from_params(params or {})
