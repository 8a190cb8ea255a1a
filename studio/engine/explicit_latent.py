"""Where a request's z and condition start: a seed and a prompt, or an explicit latent (an inverted picture).

The renderer calls these three functions instead of drawing ``seeded_z`` and encoding the prompt itself, so
an explicit latent is one rule in one place: it replaces the seeded z and the prompt's projected condition,
and everything after (truncation, directions, concepts, interpolation) treats it like any other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from studio.engine.latents import seeded_z, slerp
from studio.engine.requests import Endpoint, ExplicitLatent, GenerationRequest, RequestError

Embed = Callable[[list[str]], torch.Tensor]


def request_z(request: GenerationRequest, z_dim: int) -> torch.Tensor:
    """The z of a one-image request before directions: its own (seeded or explicit), slerped to B, truncated."""
    z = _start_z(request.latent, request.seed, z_dim)
    if request.interpolate_to is not None and request.t:
        end = request.interpolate_to
        z = slerp(z, _start_z(end.latent, end.seed, z_dim), float(request.t))
    return z * float(request.truncation)


def start_conditions(
    requests: list[GenerationRequest],
    embed: Embed,
    cond_dim: int,
    device: torch.device,
    places: int | None = None,
) -> torch.Tensor:
    """Projected conditions (N x cond_dim): the stored ones of explicit latents, the embedded prompts of the rest.
    ``places``: a model whose prompts draw layered conditions (N x places x cond_dim, studio/models/concepts.py);
    a stored condition is then read at every place."""
    rows: list[torch.Tensor | None] = [
        _explicit_condition(r.latent, cond_dim, device, places) if r.latent is not None else None
        for r in requests
    ]
    prompts = [r.prompt for r, row in zip(requests, rows) if row is None]
    embedded = iter(embed(prompts) if prompts else ())
    return torch.stack([row if row is not None else next(embedded) for row in rows])


def endpoint_condition(
    end: Endpoint, embed: Embed, cond_dim: int, device: torch.device, places: int | None = None
) -> torch.Tensor:
    """The projected condition of an interpolation's B end (at every place with ``places``)."""
    if end.latent is not None:
        return _explicit_condition(end.latent, cond_dim, device, places)
    return embed([end.prompt])[0]


def _start_z(latent: ExplicitLatent | None, seed: int, z_dim: int) -> torch.Tensor:
    if latent is None:
        return seeded_z(seed, z_dim)
    z = torch.from_numpy(latent.z_array().copy())
    if z.numel() != z_dim:
        raise RequestError(
            f"This picture's latent has {z.numel()} numbers but the model needs {z_dim}; "
            "it was inverted into another model."
        )
    return z


def _explicit_condition(
    latent: ExplicitLatent, cond_dim: int, device: torch.device, places: int | None = None
) -> torch.Tensor:
    condition = torch.from_numpy(latent.condition_array().copy())
    if condition.numel() != cond_dim:
        raise RequestError(
            f"This picture's condition has {condition.numel()} numbers but the model needs {cond_dim}; "
            "it was inverted into another model."
        )
    if places is not None:
        condition = condition[None].expand(places, -1).contiguous()
    return condition.to(device)
