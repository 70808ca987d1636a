"""Shapes captions: write varied ones from attribute labels, and read attributes back from any
sentence.

Like CUB's, most captions name only some attributes; each caption keeps the keys it names so that
a metric checks an image only against what its caption says.
"""

from __future__ import annotations

import re

import numpy as np

from .vocabulary import ATTRIBUTE_KEYS

# Words a caption may use for each value (the first is the vocabulary word itself).
SHAPE_WORDS = {
    "circle": ["circle", "disk"],
    "square": ["square"],
    "triangle": ["triangle"],
    "star": ["star", "five-pointed star"],
    "heart": ["heart", "heart shape"],
    "diamond": ["diamond", "rhombus"],
    "hexagon": ["hexagon"],
    "cross": ["cross", "plus sign"],
}
COLOR_WORDS = {color: [color] for color in
               ("red", "orange", "yellow", "green", "blue", "pink", "brown", "white", "black")}
COLOR_WORDS["purple"] = ["purple", "violet"]
SIZE_WORDS = {
    "small": ["small", "little", "tiny"],
    "medium": ["medium", "medium-sized", "mid-sized"],
    "large": ["large", "big", "huge"],
}
# Adjective before the noun, and a phrase after it.
PATTERN_ADJECTIVES = {
    "plain": ["plain", "solid", "solid-colored"],
    "striped": ["striped", "stripy"],
    "dotted": ["dotted", "polka-dot", "spotted"],
    "checkered": ["checkered", "checkerboard", "chequered"],
}
PATTERN_PHRASES = {
    "plain": ["with no pattern", "in one flat color"],
    "striped": ["with stripes", "covered in thin stripes"],
    "dotted": ["with dots", "covered in dots", "with polka dots"],
    "checkered": ["with a checkerboard pattern", "with a checkered pattern"],
}
POSITION_PHRASES = {
    "center": ["in the center", "in the middle", "at the center of the image"],
    "top": ["at the top", "near the top edge", "in the upper part"],
    "bottom": ["at the bottom", "near the bottom edge", "in the lower part"],
    "left": ["on the left", "on the left side", "at the left"],
    "right": ["on the right", "on the right side", "at the right"],
    "top left": ["in the top left corner", "at the top left", "in the upper left corner"],
    "top right": ["in the top right corner", "at the top right", "in the upper right corner"],
    "bottom left": ["in the bottom left corner", "at the bottom left", "in the lower left corner"],
    "bottom right": ["in the bottom right corner", "at the bottom right", "in the lower right corner"],
}
BACKGROUND_WORDS = {
    "white": ["white"],
    "black": ["black"],
    "gray": ["gray", "grey"],
    "light blue": ["light blue", "pale blue", "sky blue"],
    "beige": ["beige", "cream"],
    "dark green": ["dark green", "forest green"],
}
BACKGROUND_PHRASES = ["on a {} background", "against a {} backdrop", "over a {} background"]

# Templates and the attribute keys each names. The first names all six, so every image has at
# least one complete caption; the others name subsets, as human captions do.
FULL_TEMPLATE = ("{a} {size} {color} {shape} {pattern_with} {position} {background}", ATTRIBUTE_KEYS)
TEMPLATES = [
    ("{a} {size} {color} {pattern} {shape} {position} {background}", ATTRIBUTE_KEYS),
    ("{a} {pattern} {color} {shape} {background}", ("pattern", "color", "shape", "background")),
    ("{a} {color} {shape}", ("color", "shape")),
    ("there is {a} {size} {shape} {position}", ("size", "shape", "position")),
    ("the {shape} is {color} and {pattern_predicate}", ("shape", "color", "pattern")),
    ("{a} {size} {pattern} {shape} {position}", ("size", "pattern", "shape", "position")),
    ("{position}, {a} {color} {shape} sits {background}", ("position", "color", "shape", "background")),
    ("a picture of {a} {color} {shape} {background}", ("color", "shape", "background")),
    ("the background is {background_word} and the {shape} is {color}", ("background", "shape", "color")),
    ("{a} {color} {shape} {pattern_with}", ("color", "shape", "pattern")),
    ("{a} {size} {shape} {background}", ("size", "shape", "background")),
    ("this image shows {a} {color} {shape} {position}", ("color", "shape", "position")),
]
CAPTIONS_PER_IMAGE = 6
PATTERN_PREDICATES = {"plain": ["plain", "solid"], "striped": ["striped"], "dotted": ["dotted", "spotted"],
                      "checkered": ["checkered"]}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _fill(template: str, attributes: dict[str, str], rng: np.random.Generator) -> str:
    words = {
        "shape": _pick(rng, SHAPE_WORDS[attributes["shape"]]),
        "color": _pick(rng, COLOR_WORDS[attributes["color"]]),
        "size": _pick(rng, SIZE_WORDS[attributes["size"]]),
        "pattern": _pick(rng, PATTERN_ADJECTIVES[attributes["pattern"]]),
        "pattern_with": _pick(rng, PATTERN_PHRASES[attributes["pattern"]]),
        "pattern_predicate": _pick(rng, PATTERN_PREDICATES[attributes["pattern"]]),
        "position": _pick(rng, POSITION_PHRASES[attributes["position"]]),
        "background_word": _pick(rng, BACKGROUND_WORDS[attributes["background"]]),
    }
    words["background"] = _pick(rng, BACKGROUND_PHRASES).format(words["background_word"])
    # The article agrees with the word that follows "{a}".
    following = template.split("{a} ", 1)[1].split(" ", 1)[0] if "{a} " in template else ""
    next_word = following.format(**words) if following else ""
    words["a"] = "an" if next_word[:1] in tuple("aeiou") else "a"
    return template.format(**words)


def make_captions(attributes: dict[str, str], rng: np.random.Generator) -> list[tuple[str, tuple[str, ...]]]:
    """Write `CAPTIONS_PER_IMAGE` captions for one image.

    Returns:
        ``(caption, keys)`` pairs, where ``keys`` are the attribute keys the caption names. The
        first caption names all six; the rest use templates drawn without repetition.
    """
    chosen = rng.choice(len(TEMPLATES), size=CAPTIONS_PER_IMAGE - 1, replace=False)
    templates = [FULL_TEMPLATE] + [TEMPLATES[int(i)] for i in chosen]
    return [(_fill(template, attributes, rng), tuple(keys)) for template, keys in templates]


def _alternation(words_by_value: dict[str, list[str]]) -> tuple[str, dict[str, str]]:
    """A regex alternation of all words, longest first, and the map back to values."""
    lookup = {}
    for value, words in words_by_value.items():
        for word in words:
            lookup[_normalise(word)] = value
    ordered = sorted(lookup, key=len, reverse=True)
    return "|".join(re.escape(w) for w in ordered), lookup


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z]+", " ", text.lower()).split())


# Words a user may write, on top of those the generator uses.
_EXTRA_SHAPES = {"circle": ["circles", "disc", "disks", "discs"], "square": ["squares"],
                 "triangle": ["triangles", "triangular"], "star": ["stars"], "heart": ["hearts"],
                 "diamond": ["diamonds", "rhombi"], "hexagon": ["hexagons", "hexagonal"],
                 "cross": ["crosses", "plus"]}
_EXTRA_PATTERNS = {"plain": ["no pattern", "flat color", "flat colour", "uniform"],
                   "striped": ["stripes", "stripe", "stripey", "lines"],
                   "dotted": ["dots", "polka dots", "spots", "dotty"],
                   "checkered": ["checkers", "checks", "checked", "chequerboard", "checker"]}
_EXTRA_SIZES = {"small": ["smaller"], "medium": ["mid", "mid size", "medium size", "average sized"],
                "large": ["larger", "bigger", "giant"]}

_SHAPE_RE, _SHAPES = _alternation({k: SHAPE_WORDS[k] + _EXTRA_SHAPES[k] for k in SHAPE_WORDS})
_COLOR_RE, _COLORS = _alternation(COLOR_WORDS)
_SIZE_RE, _SIZES = _alternation({k: SIZE_WORDS[k] + _EXTRA_SIZES[k] for k in SIZE_WORDS})
_PATTERN_RE, _PATTERNS = _alternation(
    {k: PATTERN_ADJECTIVES[k] + PATTERN_PREDICATES[k] + _EXTRA_PATTERNS[k] for k in PATTERN_ADJECTIVES})
_BACKGROUND_RE, _BACKGROUNDS = _alternation(BACKGROUND_WORDS)
_BACKGROUND_SPANS = [
    re.compile(rf"\b({_BACKGROUND_RE}) (?:colou?red )?(?:background|backdrop)\b"),
    re.compile(rf"\b(?:background|backdrop) (?:is |that is |of )?(?:a |an )?({_BACKGROUND_RE})\b"),
]
_VERTICAL = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_HORIZONTAL = {"left": "left", "right": "right"}
_CENTER = ("center", "centre", "middle", "centered", "centred")


def _first(pattern: str, lookup: dict[str, str], text: str) -> str | None:
    match = re.search(rf"\b(?:{pattern})\b", text)
    return lookup[match.group(0)] if match else None


def _position(text: str) -> str | None:
    words = text.split()
    vertical = next((_VERTICAL[w] for w in words if w in _VERTICAL), None)
    horizontal = next((_HORIZONTAL[w] for w in words if w in _HORIZONTAL), None)
    if vertical and horizontal:
        return f"{vertical} {horizontal}"
    if vertical or horizontal:
        return vertical or horizontal
    return "center" if any(w in _CENTER for w in words) else None


def parse_caption(text: str) -> dict[str, str]:
    """The attributes a sentence names, as vocabulary values.

    Works on any sentence: synonyms ("big", "violet", "upper left corner", "polka-dot") map to
    vocabulary words, and attributes it does not mention are absent from the result. The
    background is read first, from phrases such as "on a grey background" or "the background is
    beige", so that its colour is not taken for the object's.
    """
    text = _normalise(text)
    found = {}
    for span in _BACKGROUND_SPANS:
        match = span.search(text)
        if match:
            found["background"] = _BACKGROUNDS[match.group(1)]
            # Cut the background phrase out, leaving a separator so words do not join.
            text = text[: match.start()] + " | " + text[match.end():]
            break
    values = {
        "shape": _first(_SHAPE_RE, _SHAPES, text),
        "color": _first(_COLOR_RE, _COLORS, text),
        "size": _first(_SIZE_RE, _SIZES, text),
        "position": _position(text),
        "pattern": _first(_PATTERN_RE, _PATTERNS, text),
    }
    found.update({key: value for key, value in values.items() if value is not None})
    return {key: found[key] for key in ATTRIBUTE_KEYS if key in found}
