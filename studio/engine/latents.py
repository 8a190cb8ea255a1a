"""Latent arithmetic: seeded z, spherical interpolation, closed-form (SeFa) directions, variety offsets and
prompt strength."""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


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


# Fixed for good: the variety directions of stored images (request field ``variety``) depend on it.
VARIETY_SEED = 20261201


def variety_offsets(z: torch.Tensor, generator) -> torch.Tensor:
    """Where ``variety`` 1 moves each row's projected condition (``N x cond_dim``), a direction chosen by z.

    A fixed random map (drawn on the CPU from ``VARIETY_SEED``) takes each z to a unit direction in the space
    the model conditions on (the text embedding, or the class embedding), which the model's own projection
    carries into its condition space. So a seed keeps its direction, a latent slider or an interpolation turns
    it smoothly, and a z of zeros has none. Each row is computed alone, so a batch never changes a row.
    """
    if generator.config.num_classes > 0:  # classes: unit directions scaled to a typical class embedding
        table = generator.class_embedding.weight.detach().float().cpu()
        project = table.norm(dim=1).mean() * torch.eye(table.shape[1])
    else:  # text: unit embedding directions through the model's linear projection (no bias: an offset)
        project = generator.embed_proj.weight.detach().float().cpu().T  # embed_dim x cond_dim
    basis = _variety_basis(z.shape[1], project.shape[0])
    rows = [F.normalize(z[i : i + 1].detach().float().cpu() @ basis, dim=1) @ project for i in range(len(z))]
    return torch.cat(rows) if rows else torch.zeros(0, project.shape[1])


def varied_conditions(projected: torch.Tensor, z: torch.Tensor, generator, amounts) -> torch.Tensor:
    """``projected`` conditions moved by ``amounts`` (a number, or one per row as an ``N x 1`` tensor) times
    :func:`variety_offsets`: what the engine renders and what the evaluation scores. Layered conditions
    (``N x places x cond_dim``, studio/models/concepts.py) move alike at every place."""
    offsets = amounts * variety_offsets(z, generator)
    if projected.dim() == 3:
        offsets = offsets[:, None, :]
    return projected + offsets.to(projected.device)


def condition_origin(generator) -> torch.Tensor:
    """Where the projected condition of an empty prompt lies: the projection's bias for a text model (the
    embedding of zeros), zeros for a class model."""
    width = generator.config.cond_dim
    if generator.config.num_classes > 0 or generator.embed_proj.bias is None:
        return torch.zeros(width)
    return generator.embed_proj.bias.detach().float().cpu()


def strengthened_conditions(projected: torch.Tensor, generator, amounts) -> torch.Tensor:
    """``projected`` conditions moved away from :func:`condition_origin` by ``amounts`` (a number, or one per
    row as ``N x 1``): for a text model exactly the prompt embedding times the amount, through the model's
    linear projection. 1 leaves them as they are; above 1 the prompt is followed harder. Layered conditions
    (``N x places x cond_dim``) move alike at every place."""
    origin = condition_origin(generator).to(projected.device)
    amounts = torch.as_tensor(amounts, dtype=projected.dtype, device=projected.device)
    if projected.dim() == 3 and amounts.dim() == 2:
        amounts = amounts[:, :, None]
    return origin + amounts * (projected - origin)


@lru_cache(maxsize=4)
def _variety_basis(z_dim: int, width: int) -> torch.Tensor:
    """The fixed random map from z to the embedding space, drawn once per shape (never modified)."""
    seeded = torch.Generator(device="cpu").manual_seed(VARIETY_SEED)
    return torch.randn(z_dim, width, generator=seeded)
