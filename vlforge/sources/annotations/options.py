"""The base of every adapter's recipe options: strict keys, so a typo is an error naming the field."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class AdapterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def image_roots(self) -> list[Path]:
        """The folders this source's image files must lie in (unless the mix allows outside paths): its
        `images` option. A source without one (shards, text) names no image files, so none may be read."""
        images = getattr(self, "images", None)
        return [] if images is None else list(images) if isinstance(images, list) else [images]
