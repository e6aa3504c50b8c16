"""STD++: the stability recipe of Mosbach et al. (2021): bias-corrected AdamW, a small learning rate, train longer.

Design choices (METHODS.md): the learning rate is searched in ``log[1e-5, 1e-4]`` instead of the shared range, and
the run lasts ``epoch_multiplier`` × the profile's epochs (2 by default) with best-epoch selection on dev as for
every method. The longer training is part of the recipe, so it shows in the cost columns rather than being
equalised away. Bias correction is on for every method already (PyTorch's AdamW always corrects).
"""

from __future__ import annotations

from dataclasses import dataclass

from optuna.distributions import FloatDistribution

from regbench.harness.run.method import Method, MethodConfig, hparam, register_method


@dataclass(frozen=True)
class StdPlusPlusConfig(MethodConfig):
    epoch_multiplier: int = hparam(2, "train this many times the profile's epochs (the 'train longer' part)")


@register_method
class StdPlusPlus(Method[StdPlusPlusConfig]):
    name = "std++"
    summary = "Mosbach et al. 2021: small learning rate, 2x the epochs, bias-corrected AdamW"
    config_class = StdPlusPlusConfig

    lr_range = FloatDistribution(1e-5, 1e-4, log=True)

    def num_epochs(self, base_epochs: int) -> int:
        return base_epochs * self.config.epoch_multiplier

    def phase_note(self, base_epochs: int) -> str:
        return (f"trains {self.config.epoch_multiplier}x the epochs ({self.num_epochs(base_epochs)}); dev is evaluated "
                "as often as for every method, evenly over the longer run")
