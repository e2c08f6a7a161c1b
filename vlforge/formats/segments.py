"""A sample is a list of segments {"text": str, "train": bool}; train says whether the span is supervised."""

# Where the next image goes; the trainer expands it to <img> + 256 image positions + </img>.
IMAGE_SLOT = "<img></img>"


def segment(text: str, train: bool) -> dict:
    """One segment."""
    return {"text": text, "train": train}


def join_text(segments: list[dict]) -> str:
    """The sample's whole text."""
    return "".join(s["text"] for s in segments)
