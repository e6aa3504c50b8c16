"""The modules of MVCR (``regularizers/mvcr.py``): hierarchical autoencoders and the plug that carries them.

An :class:`AEPlug` takes the place of a BERT FFN output sub-layer's ``dropout`` module (``BertOutput.dropout``),
so the sub-layer computes ``dropout(dense(x))`` and then, in training only, ``dropout(path(h + noise))`` before its
residual add + LayerNorm, exactly where the reference code puts the autoencoders. In eval mode the plug returns
``dropout(x)`` (the identity in eval), i.e. the very tensor the plain sub-layer computes: logits stay bit-identical.
Replacing a parameter-free module (instead of a forward hook) keeps the AEs visible as model parameters (the main
optimiser, ``state_dict`` snapshots of the best epoch) and makes removal a single ``setattr``.
"""

from __future__ import annotations

import torch
from torch import nn

SUB_AES = 2  # sub-autoencoders per HAE (METHODS.md); the inner choice is uniform over them and the identity


class SubAE(nn.Module):
    """``z ← tanh(W_u dropout(tanh(W_d z)))`` with ``W_d: d → d/2`` and ``W_u: d/2 → d``."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.down = nn.Linear(width, width // 2)
        self.up = nn.Linear(width // 2, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.up(self.dropout(torch.tanh(self.down(z)))))


class HAE(nn.Module):
    """Hierarchical autoencoder of width ``d``: ``W_o · inner(dropout(tanh(W_e h)))``, inner = a sub-AE or identity."""

    def __init__(self, hidden: int, width: int, dropout: float) -> None:
        super().__init__()
        self.encoder = nn.Linear(hidden, width)
        self.dropout = nn.Dropout(dropout)
        self.subs = nn.ModuleList(SubAE(width, dropout) for _ in range(SUB_AES))
        self.decoder = nn.Linear(width, hidden)  # no activation: it must reach the whole range of h

    def forward(self, h: torch.Tensor, inner: int) -> torch.Tensor:
        z = self.dropout(torch.tanh(self.encoder(h)))
        if inner < len(self.subs):  # inner == len(subs) is the identity view
            z = self.subs[inner](z)
        return self.decoder(z)


def path_probabilities(n_haes: int) -> torch.Tensor:
    """Outer-path distribution: each HAE ``1/(2N−1)``, identity (last entry) ``(N−1)/(2N−1)``."""
    share = 1.0 / (2 * n_haes - 1)
    return torch.tensor([share] * n_haes + [(n_haes - 1) * share], dtype=torch.float64)


def draw_paths(length: int, n_haes: int, generator: torch.Generator) -> torch.Tensor:
    """One path per sequence position (shared across the batch): an HAE index in ``[0, N)`` or ``N`` = identity."""
    return torch.multinomial(path_probabilities(n_haes), length, replacement=True, generator=generator)


class AEPlug(nn.Module):
    """Stands in for ``BertOutput.dropout``; keeps the original module to give it back on unplug.

    The random choices (inner view per HAE and forward, outer path per position) come from ``generator``, a CPU
    generator the method seeds from the run seed: cheap, no device sync, and independent of the dropout stream.
    The Gaussian noise comes from the device's global stream like dropout. The last training forward's noisy input
    and HAE outputs are kept in ``cache`` for the method's reconstruction loss (they are in the graph anyway).
    """

    def __init__(self, dropout: nn.Module, haes: list[HAE], noise_std: float, generator: torch.Generator) -> None:
        super().__init__()
        self.dropout = dropout
        self.haes = nn.ModuleList(haes)
        self.noise_std = noise_std
        self.generator = generator
        self.cache: tuple[torch.Tensor, list[torch.Tensor]] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(x)
        if not self.training:
            return h  # the plain sub-layer's tensor, untouched
        noisy = h + torch.randn_like(h) * self.noise_std
        inner = torch.randint(SUB_AES + 1, (len(self.haes),), generator=self.generator).tolist()
        outs = [hae(noisy, choice) for hae, choice in zip(self.haes, inner, strict=True)]
        paths = draw_paths(h.shape[-2], len(self.haes), self.generator).to(h.device, non_blocking=True)
        stacked = torch.stack([*outs, noisy])  # (N + 1, B, T, H); the identity view is the last entry
        index = paths.view(1, 1, -1, 1).expand(1, *h.shape)
        self.cache = (noisy, outs)
        return self.dropout(stacked.gather(0, index).squeeze(0))  # gather: exact selection, no arithmetic

    def take_cache(self) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
        cache, self.cache = self.cache, None
        return cache


def unplug(model: nn.Module) -> int:
    """Put every plugged sub-layer's original dropout back; returns how many plugs were removed."""
    removed = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, AEPlug):
                setattr(module, name, child.dropout)
                removed += 1
    return removed
