"""How a tar member's name splits into a sample key and an extension, and which extensions are images.

One rule for every reader and writer of shards (`shards.reader`'s grouping for export, the trainer, eval and
stats; `formats.sample`'s image members; verify, clean's dedup rewrite, img2dataset shards, the mix's shard
adapters): webdataset's, where the key ends at the first dot of the basename.
"""

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"})


def split_member(name: str) -> tuple[str, str]:
    """(key, extension) of a member name: `dir/000001.seg.jpg` -> (`dir/000001`, `seg.jpg`)."""
    head, _, base = name.rpartition("/")
    key, _, ext = base.partition(".")
    return (f"{head}/{key}" if head else key), ext


def is_image(ext: str) -> bool:
    """Whether a member extension (`jpg`, `seg.PNG`) names an image: its last part, case ignored."""
    return ext.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS
