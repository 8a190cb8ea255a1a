"""Parameters written as text: this studio's one-line style and AUTOMATIC1111's, read back into a request.

Both look like a prompt, then a last line of ``Key: value`` pairs (values holding ``,`` or ``:`` are JSON
quoted). A1111 puts a ``Negative prompt:`` line in between and keys that mean nothing to a GAN (Steps,
Sampler, CFG scale); those are listed as ``ignored`` so the person is told what did not carry over.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from studio.engine.requests import ConceptSlider, Endpoint, GenerationRequest, RequestError

GAN_STUDIO = "GAN Studio"
A1111 = "AUTOMATIC1111"
NEGATIVE_PREFIX = "Negative prompt:"
# Keys this studio writes (studio.io.metadata.parameters_text); any other key marks another tool's text.
STUDIO_KEYS = frozenset(
    {"Seed", "Truncation", "Variety", "Spread", "Strength", "Size", "Model", "Model hash", "Directions", "Concept", "Interpolate to",
     "Seed B", "t", "Animation", "Device", "Version"}
)  # fmt: skip
# One ``Key: value`` pair; the value is JSON-quoted or runs to the next comma (A1111's own pattern).
_PAIR = re.compile(r'\s*([A-Za-z][\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_CONCEPT = re.compile(r"^(.+?) -> (.+) x(-?[\d.]+(?:e-?\d+)?)$")


class ParametersTextError(ValueError):
    """Text that looks like parameters but cannot be used; ``str(error)`` is one sentence."""


@dataclass(frozen=True)
class TextParameters:
    """A request read from text, which tool wrote it, and what in it did not map onto this studio."""

    request: GenerationRequest
    tool: str
    ignored: tuple[str, ...] = ()
    model_hash: str = ""

    def ignored_sentence(self) -> str:
        """'Its negative prompt, Steps and Sampler do not apply here.' ('' when everything mapped)."""
        if not self.ignored:
            return ""
        names = list(self.ignored)
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"Its {listed} {'does' if len(names) == 1 else 'do'} not apply here."


def key_value_pairs(line: str) -> list[tuple[str, str]] | None:
    """The ``Key: value`` pairs of a whole line, values unquoted; None unless the line is nothing else."""
    pairs, position = [], 0
    line = line.strip()
    while position < len(line):
        match = _PAIR.match(line, position)
        if match is None or match.end() == position:
            return None
        key, value = match.group(1).strip(), match.group(2).strip()
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        pairs.append((key, value))
        position = match.end()
    return pairs or None


def parse_parameters_text(text: str, model: str) -> TextParameters | None:
    """Read ``text`` as parameters for ``model`` (A1111 text) or the model it names (this studio's text).

    Returns None when the text is not parameters (ordinary text is pasted as text); raises
    ParametersTextError when it is parameters that cannot be used (a malformed seed, an empty prompt).
    """
    lines = text.strip().splitlines()
    if len(lines) < 2:
        return None
    pairs = key_value_pairs(lines[-1])
    keys = [key for key, _ in pairs or ()]
    if pairs is None or "Seed" not in keys:
        return None
    values = dict(pairs)
    prompt_lines, negative_lines = [], []
    target = prompt_lines
    for line in lines[:-1]:
        if line.startswith(NEGATIVE_PREFIX):
            target = negative_lines
            line = line[len(NEGATIVE_PREFIX) :]
        target.append(line)
    prompt = "\n".join(prompt_lines).strip()
    ours = "Truncation" in values and set(keys) <= STUDIO_KEYS and not negative_lines
    try:
        seed = int(values["Seed"])
        if ours:
            request = _studio_request(prompt, seed, values, pairs)
            return TextParameters(request.validated(), GAN_STUDIO, (), values.get("Model hash", ""))
        request = GenerationRequest(prompt, seed=seed, model=model).validated()
    except RequestError as exc:
        raise ParametersTextError(str(exc)) from exc
    except ValueError as exc:
        raise ParametersTextError(f"The parameters text is malformed ({exc}).") from exc
    ignored = (["negative prompt"] if "\n".join(negative_lines).strip() else []) + [
        key for key in keys if key != "Seed"
    ]
    return TextParameters(request, A1111 if not ours else GAN_STUDIO, tuple(ignored))


def _studio_request(prompt: str, seed: int, values: dict[str, str], pairs) -> GenerationRequest:
    directions = tuple(
        (int(index), float(scale))
        for index, scale in (part.split(":") for part in values.get("Directions", "").split())
    )
    concepts = []
    for key, value in pairs:
        if key == "Concept":
            match = _CONCEPT.match(value)
            if match is None:
                raise ValueError(f"concept {value!r}")
            concepts.append(ConceptSlider(match.group(1), match.group(2), float(match.group(3))))
    end = None
    if "Interpolate to" in values:
        end = Endpoint(values["Interpolate to"], int(values.get("Seed B", seed)))
    return GenerationRequest(
        prompt,
        seed=seed,
        truncation=float(values["Truncation"]),
        variety=float(values.get("Variety", 0.0)),
        spread=_spread(values.get("Spread", "off")),
        strength=float(values.get("Strength", 1.0)),
        directions=directions,
        concepts=tuple(concepts),
        interpolate_to=end,
        t=float(values.get("t", 0.0)) if end is not None else 0.0,
        model=values.get("Model", "emoji"),
    )


def _spread(value: str) -> bool:
    if value.strip().lower() not in ("on", "off"):
        raise ValueError(f"spread {value!r}")
    return value.strip().lower() == "on"
