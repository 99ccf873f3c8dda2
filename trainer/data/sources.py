"""The datasets the trainer knows, and where each one's files live: the one list of them.

``DATASETS`` is what ``--dataset`` accepts; every other list (the CLIs' choices, the loader's
check) is taken from here. This module imports only the standard library, so a command line can
read it without loading numpy or numba.

The checksums are the MD5s the datasets' authors publish (MNIST's as pinned by torchvision,
Fashion-MNIST's from zalandoresearch/fashion-mnist's README). MD5 guards against corrupt and
wrong files here, not against an attacker who controls a mirror.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """Where a dataset lives: mirror base URLs (tried in order), each file's MD5 and, where
    published, each file's size in bytes (a download is capped at it)."""

    mirrors: tuple[str, ...]
    md5: Mapping[str, str]
    sizes: Mapping[str, int] = field(default_factory=dict)


SOURCES: dict[str, Source] = {
    "mnist": Source(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow tutorials'
            "https://yann.lecun.com/exdb/mnist/",  # the original; often refuses scripts
        ),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        # As listed on yann.lecun.com/exdb/mnist.
        sizes={
            "train-images-idx3-ubyte.gz": 9912422,
            "train-labels-idx1-ubyte.gz": 28881,
            "t10k-images-idx3-ubyte.gz": 1648877,
            "t10k-labels-idx1-ubyte.gz": 4542,
        },
    ),
    "fashion-mnist": Source(
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            # The authors' S3 website endpoint serves plain HTTP only; the MD5 still applies.
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # The published files' sizes (as Keras's downloader reports them); Debian's recompressed
        # copies are 23-24 bytes smaller (no file name in the gzip header) and have other MD5s.
        sizes={
            "train-images-idx3-ubyte.gz": 26421880,
            "train-labels-idx1-ubyte.gz": 29515,
            "t10k-images-idx3-ubyte.gz": 4422102,
            "t10k-labels-idx1-ubyte.gz": 5148,
        },
    ),
}
DATASETS = tuple(SOURCES)  # ("mnist", "fashion-mnist")

# What every dataset here holds (Fashion-MNIST is "a direct drop-in replacement" for MNIST, its
# README says): 28x28 grey images in 10 classes. The one definition of each; the loader checks
# the files against it and the model's input and output layers are sized by it.
IMAGE_SHAPE = (28, 28)
NUM_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
NUM_CLASSES = 10


def known_size(md5: str) -> int | None:
    """The size of the published file with this MD5, whichever Source names it (a caller may
    build its own Source from these checksums, with other mirrors in front)."""
    for source in SOURCES.values():
        for name, digest in source.md5.items():
            if digest == md5 and name in source.sizes:
                return source.sizes[name]
    return None
