"""Every SynthDoG parameter, with defaults taken from SynthDoG's config_en/zh.yaml.

Sizes in SynthDoG's pixels (canvas 720-1024 px on the short side) are kept as they are; the renderer
scales them to the output. Each effect has a probability `prob` and ranges `[lo, hi]` sampled
uniformly. A recipe overrides any subset; an unknown key or a bad value is an error that names the
field (`synthdog.document.noise.scale: ...`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from vlforge.config import ConfigError, field_errors


def _rule(ok: Callable[[tuple], bool], message: str) -> AfterValidator:
    def check(span: tuple) -> tuple:
        if not ok(span):
            raise ValueError(f"{message}, got {list(span)}")
        return span

    return AfterValidator(check)


Prob = Annotated[float, Field(ge=0, le=1)]
_ORDERED = _rule(lambda s: s[0] <= s[1], "range must be [low, high] with low <= high")
Span = Annotated[tuple[float, float], _ORDERED]
NonNegSpan = Annotated[Span, _rule(lambda s: s[0] >= 0, "must not be negative")]
UnitSpan = Annotated[tuple[Prob, Prob], _ORDERED]
Byte = Annotated[int, Field(ge=0, le=255)]
ByteSpan = Annotated[tuple[Byte, Byte], _ORDERED]
SizeSpan = Annotated[tuple[int, int], _ORDERED, _rule(lambda s: s[0] >= 32, "sizes must be at least 32 px")]
AspectSpan = Annotated[Span, _rule(lambda s: s[0] >= 1, "aspect ratios are long / short side, at least 1")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Canvas(_Section):
    size: Annotated[int, Field(ge=32, le=8192)] | None = 448  # square output side; None: SynthDoG's sizes
    landscape: Prob = 0.5
    short_size: SizeSpan = (720, 1024)
    aspect_ratio: AspectSpan = (1, 2)
    quality: Annotated[tuple[Annotated[int, Field(ge=1, le=100)], Annotated[int, Field(ge=1, le=100)]],
                       _ORDERED] = (50, 95)


class Blur(_Section):
    prob: Prob = 1.0
    sigma: NonNegSpan = (0, 10)


class Background(_Section):
    blur: Blur = Blur()
    texture_prob: Prob = 0.2  # a generated texture instead of a photograph


class Tint(_Section):
    prob: Prob = 0.2
    rgb: tuple[ByteSpan, ByteSpan, ByteSpan] = ((200, 255), (200, 255), (200, 255))


class Paper(_Section):
    alpha: UnitSpan = (0, 0.2)  # texture opacity over white paper
    tint: Tint = Tint()


class Layout(_Section):
    text_scale: Annotated[tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]],
                          _ORDERED] = (0.0334, 0.1)
    max_row: Annotated[int, Field(ge=1, le=100)] = 10
    max_col: Annotated[int, Field(ge=1, le=20)] = 3
    fill: UnitSpan = (0.5, 1)
    full: Prob = 0.1
    align: tuple[Literal["left", "right", "center"], ...] = Field(("left", "right", "center"), min_length=1)
    stack_spacing: UnitSpan = (0.0334, 0.0334)
    stack_fill: UnitSpan = (0.5, 1)
    stack_full: Prob = 0.1
    min_text_px: Annotated[float, Field(ge=1)] = 8  # smallest line height in output pixels (legibility)


class TextColor(_Section):
    prob: Prob = 0.2
    gray: ByteSpan = (0, 64)
    colorize: Prob = 1.0


class Content(_Section):
    margin: Annotated[UnitSpan, _rule(lambda s: s[1] < 0.5, "margins are per side, so below 0.5")] = (0, 0.1)
    layout: Layout = Layout()
    textbox_fill: UnitSpan = (0.5, 1)
    textbox_color: TextColor = TextColor()
    content_color: TextColor = TextColor()


class Elastic(_Section):
    prob: Prob = 1.0
    alpha: Annotated[NonNegSpan, _rule(lambda s: s[1] <= 1, "displacement is at most 1 px")] = (0, 1)
    sigma: NonNegSpan = (0, 0.5)


class Noise(_Section):
    prob: Prob = 1.0
    scale: NonNegSpan = (0, 8)


_PERSPECTIVE_PERCENTS = (
    ((0.75, 1), (0.75, 1), (0.75, 1), (0.75, 1)),
    ((0.75, 1), (1, 1), (0.75, 1), (1, 1)),
    ((1, 1), (0.75, 1), (1, 1), (0.75, 1)),
    ((0.75, 1), (1, 1), (1, 1), (1, 1)),
    ((1, 1), (0.75, 1), (1, 1), (1, 1)),
    ((1, 1), (1, 1), (0.75, 1), (1, 1)),
    ((1, 1), (1, 1), (1, 1), (0.75, 1)),
    ((1, 1), (1, 1), (1, 1), (1, 1)),
)


class Perspective(_Section):
    """SynthDoG's perspective: the sides (top, right, bottom, left) shrink to sampled fractions."""

    prob: Prob = 1.0
    weights: tuple[Annotated[float, Field(ge=0)], ...] = (750, 50, 50, 25, 25, 25, 25, 50)
    percents: tuple[tuple[UnitSpan, UnitSpan, UnitSpan, UnitSpan], ...] = _PERSPECTIVE_PERCENTS

    @model_validator(mode="after")
    def _matching(self) -> Perspective:
        if len(self.weights) != len(self.percents):
            raise ValueError(f"weights has {len(self.weights)} entries but percents has {len(self.percents)}")
        if sum(self.weights) <= 0:
            raise ValueError("weights must not all be zero")
        return self


class Rotation(_Section):
    prob: Prob = 0.0  # SynthDoG does not rotate documents
    angle: Span = (-10, 10)


class Document(_Section):
    fullscreen: Prob = 0.5
    landscape: Prob = 0.5
    short_size: SizeSpan = (480, 1024)
    aspect_ratio: AspectSpan = (1, 2)
    paper: Paper = Paper()
    content: Content = Content()
    elastic: Elastic = Elastic()
    noise: Noise = Noise()
    perspective: Perspective = Perspective()
    rotation: Rotation = Rotation()


class ColorShift(_Section):
    prob: Prob = 0.2
    rgb: tuple[ByteSpan, ByteSpan, ByteSpan] = ((0, 255), (0, 255), (0, 255))
    alpha: UnitSpan = (0, 0.2)


class Shadow(_Section):
    prob: Prob = 1.0
    intensity: ByteSpan = (0, 160)
    amount: UnitSpan = (0, 1)
    smoothing: UnitSpan = (0.5, 1)
    bidirectional: Prob = 0.0
    align: Span = (-1, 1)
    angle: Span = (0, 360)


class Contrast(_Section):
    prob: Prob = 1.0
    alpha: NonNegSpan = (1, 1.5)


class Brightness(_Section):
    prob: Prob = 1.0
    beta: Span = (-48, 0)


class MotionBlur(_Section):
    prob: Prob = 0.5
    k: Annotated[tuple[Annotated[int, Field(ge=1, le=5)], Annotated[int, Field(ge=1, le=5)]],
                 _ORDERED] = (3, 5)  # kernel size; PIL kernels are at most 5x5
    angle: Span = (0, 360)


class GaussianBlur(_Section):
    prob: Prob = 1.0
    sigma: NonNegSpan = (0, 1.5)


class Effects(_Section):
    """Whole-image effects, applied in this order (as SynthDoG's template does)."""

    color: ColorShift = ColorShift()
    shadow: Shadow = Shadow()
    contrast: Contrast = Contrast()
    brightness: Brightness = Brightness()
    motion_blur: MotionBlur = MotionBlur()
    gaussian_blur: GaussianBlur = GaussianBlur()


class GlyphHeights(_Section):
    en: Annotated[float, Field(ge=0)] = 7.0  # x-height
    zh: Annotated[float, Field(ge=0)] = 14.0  # height of an ideograph


class Legibility(_Section):
    """What every labelled line keeps after the warp and the image effects (output pixels, luminance 0-255).

    Effects keep SynthDoG's ranges; where a sampled value would break one of these on some line of the
    page, that value is weakened for the page (or the block takes a face that is legible at its size).
    """

    glyph_px: GlyphHeights = GlyphHeights()  # smallest reference glyph after the warp, per language
    stroke_px: Annotated[float, Field(ge=0)] = 0.8  # thinnest stem after the warp
    blur_per_stroke: Annotated[float, Field(ge=0)] = 0.5  # blur spread at most this share of the thinnest stem
    contrast: Annotated[float, Field(ge=0, le=255)] = 90.0  # paper minus ink luminance under every line


class Fonts(_Section):
    min_coverage: Prob = 0.99  # share of a language's corpus characters a font must have to serve it


class Cache(_Section):
    background_mb: Annotated[int, Field(ge=1)] = 256  # decoded background images kept per worker
    fonts: Annotated[int, Field(ge=1)] = 32  # (font, size) objects kept per worker; a CJK one holds ~7 MB


class SynthConfig(_Section):
    canvas: Canvas = Canvas()
    background: Background = Background()
    document: Document = Document()
    effects: Effects = Effects()
    legibility: Legibility = Legibility()
    fonts: Fonts = Fonts()
    cache: Cache = Cache()


def load_config(data: dict | None, where: str = "synthdog") -> SynthConfig:
    """Validate a (partial) mapping into a full config; unset keys keep their defaults. Errors name the field
    under `where`, its place in a recipe (`synthdog.canvas.size: ...`)."""
    try:
        return SynthConfig.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(field_errors(exc, where)) from None


def config_dict(config: SynthConfig) -> dict:
    """Plain JSON-able form (tuples become lists), for payloads and recipes."""
    return config.model_dump(mode="json")
