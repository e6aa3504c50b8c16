"""STD: plain fine-tuning, the reference every paired test compares against.

Recipe (METHODS.md): PyTorch's bias-corrected AdamW, linear warm-up over 10% of the steps then linear decay,
dropout 0.1, weight decay 0.01 (not on biases and LayerNorm weights), gradient clipping at 1.0, the profile's
epochs. Those are training settings shared by every method, so STD itself adds nothing to the hooks: it *is* the
loop. Only the learning rate is tuned.
"""

from __future__ import annotations

from regbench.harness.run.method import Method, register_method


@register_method
class StandardFineTuning(Method):
    name = "std"
    summary = "plain fine-tuning (AdamW, warm-up + linear decay); the reference of every paired test"
