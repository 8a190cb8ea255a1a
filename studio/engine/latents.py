"""Latent arithmetic: seeded z, spherical interpolation and closed-form (SeFa) directions."""

from __future__ import annotations

import torch


def seeded_z(seed: int, z_dim: int) -> torch.Tensor:
    """z ~ N(0, I) from ``seed``, drawn on the CPU so every device kind starts from the same numbers."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(z_dim, generator=generator)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two latents (falls back to lerp when they are nearly parallel)."""
    a_norm, b_norm = a / a.norm().clamp_min(1e-8), b / b.norm().clamp_min(1e-8)
    dot = (a_norm * b_norm).sum().clamp(-1.0, 1.0)
    omega = torch.arccos(dot)
    if float(omega.abs()) < 1e-4:
        return a + (b - a) * t
    sin_omega = torch.sin(omega)
    return (torch.sin((1.0 - t) * omega) / sin_omega) * a + (torch.sin(t * omega) / sin_omega) * b


def closed_form_directions(z_weight: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SeFa: the top eigenvectors of AᵀA for the first weight A that sees z.

    Returns (directions ``count x z_dim`` as unit rows, eigenvalues ``count``), strongest first.
    """
    weight = z_weight.detach().double().cpu()
    weight = weight / weight.norm(dim=0, keepdim=True).clamp_min(1e-12)
    eigenvalues, eigenvectors = torch.linalg.eigh(weight.T @ weight)
    order = torch.argsort(eigenvalues, descending=True)[:count]
    directions = eigenvectors[:, order].T.float()
    # Fix each vector's sign so a direction means the same thing on every machine.
    signs = torch.sign(directions[torch.arange(directions.shape[0]), directions.abs().argmax(dim=1)])
    return directions * signs[:, None], eigenvalues[order].float()
