"""People's own data on disk: a folder of images, or a ``.npy``/``.npz`` array file.

A folder holds images of any format Pillow reads (PNG, JPEG, BMP, TIFF, WebP, GIF, whose
first frame is read, ...: :func:`image_suffixes`).

A folder is either flat (every image unlabelled) or holds one subfolder per class, as
torchvision's ``ImageFolder`` lays it out (labels 0, 1, ... in the sorted order of the
subfolder names). Every image is converted to ``channels`` (1: grey, 3: RGB) and resized to
``image_size`` when they are given, else must have the first image's size and mode. 8-bit
levels are scaled by 1/255 and 16-bit ones (16-bit grey PNGs) by 1/65535. An image whose
header declares more pixels than Pillow's limit (``PIL.Image.MAX_IMAGE_PIXELS``: a
decompression bomb or a damaged file) is refused before it is decoded; file names need not
be valid UTF-8. An array
file holds one array (``.npy``) or the train and test arrays (``.npz``: ``x_train``,
``x_test`` and optional ``y_train``, ``y_test``, the layout of Keras's ``mnist.npz``, or
``train``, ``test``); see :class:`~pyrovae.data.examples.ArrayExamples` for shapes and dtypes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DataError
from .examples import NO_LABEL, ArrayExamples, Examples

__all__ = ["FolderExamples", "file_sha256", "read_array_file", "read_folder"]

#: folders of at least this many images show a progress bar (on a terminal) while their
#: headers are read and their files hashed
PROGRESS_MIN_FILES = 2000


@functools.cache
def image_suffixes() -> frozenset[str]:
    """The file name endings (lower case, with the dot) of the images a folder may hold: those
    of every format that Pillow opens (``PIL.Image.registered_extensions``)."""
    from PIL import Image

    return frozenset(s for s, f in Image.registered_extensions().items() if f in Image.OPEN)


#: PIL modes read as one grey channel (every other mode is read as RGB)
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
#: PIL modes of 16-bit grey levels (a 16-bit PNG opens as one of them)
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L")


def _visible(path: Path) -> list[Path]:
    """The entries of folder ``path`` not hidden (``.DS_Store``, ``.ipynb_checkpoints``...)."""
    return sorted(p for p in path.iterdir() if not p.name.startswith("."))


def _progress(paths: Sequence[Path], what: str) -> Any:
    """``paths``, iterated with a progress bar on stderr saying ``what`` is done when there are
    at least :data:`PROGRESS_MIN_FILES` of them and stderr is a terminal."""
    many = len(paths) >= PROGRESS_MIN_FILES
    return tqdm(paths, desc=what, unit="file", leave=False, disable=None if many else True)


#: hashes already computed in this process, by the files' names, sizes, times and inodes
_HASHED: dict[tuple[Any, ...], str] = {}


def file_sha256(paths: Sequence[Path], root: Path) -> str:
    """SHA-256 of the files ``paths``: each one's name relative to ``root`` and its bytes
    (computed once per process while no file changes: its size, time and inode are the
    same)."""
    stats = [(str(p), os.stat(p)) for p in paths]
    key = (str(root), *((n, s.st_size, s.st_mtime_ns, s.st_ino) for n, s in stats))
    if key not in _HASHED:
        _HASHED[key] = _sha256(paths, root)
    return _HASHED[key]


def _sha256(paths: Sequence[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in _progress(paths, "hashing the data's files"):
        # the name's bytes as the file system holds them (UTF-8 or not)
        digest.update(os.fsencode(path.relative_to(root)) + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def open_image(path: Path, reading: str = "image") -> Iterator[Any]:
    """``PIL.Image.open(path)`` for the block (its header read, its pixels not yet); a
    :class:`DataError` naming the file and the reason when it is no image, is damaged, or
    declares more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression bomb)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"image '{path}' declares more pixels than Pillow reads safely "
            f"({Image.MAX_IMAGE_PIXELS:,}): a decompression bomb or a damaged file; remove it "
            "(or shrink it first)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise DataError(
            f"'{path}' is not a readable {reading} ({reason}); replace or remove it"
        ) from None


def image_levels(image: Any, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` levels of the PIL ``image`` converted to ``channels`` and
    resized to ``size = (W, H)`` if given: uint8 (8-bit levels), or float32 in [0, 1] for a
    16-bit grey image (levels / 65535)."""
    from PIL import Image

    if image.mode in WIDE_MODES:
        levels = np.asarray(image, dtype=np.float32).clip(0, 65535) / 65535
        if size is not None and levels.shape[::-1] != size:
            resized = Image.fromarray(levels, "F").resize(size, Image.Resampling.BILINEAR)
            levels = np.asarray(resized, dtype=np.float32)
        return np.repeat(levels[..., None], 3, axis=2) if channels == 3 else levels
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


class FolderExamples(Examples):
    """The images ``paths`` (labels ``labels``, -1 for none, indices into ``class_names``),
    each read as ``(C, H, W)`` float32 in [0, 1] when its batch is read."""

    def __init__(
        self,
        paths: list[Path],
        labels: list[int],
        class_names: Sequence[str],
        item_shape: tuple[int, int, int],
        resize: bool,
        where: str,
    ) -> None:
        self.paths, self.labels = paths, torch.tensor(labels, dtype=torch.int64)
        self.class_names, self.num_classes = tuple(class_names), len(class_names)
        self.item_shape, self.where = item_shape, where
        self.resize = resize

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> torch.Tensor:
        """Image ``i`` as ``(C*H*W,)`` float32 in [0, 1]."""
        c, h, w = self.item_shape
        path = self.paths[i]
        with open_image(path) as opened:
            try:
                array = image_levels(opened, c, (w, h) if self.resize else None)
            except (OSError, ValueError, SyntaxError) as exc:  # the pixels, decoded now
                raise DataError(
                    f"image '{path}' cannot be read ({exc}); replace or remove it"
                ) from None
        if array.shape[:2] != (h, w):
            raise DataError(
                f"image '{path}' is {array.shape[1]}x{array.shape[0]} pixels, but the others "
                f"are {w}x{h}; set data.image_size = [{h}, {w}] to resize every image"
            )
        x = torch.from_numpy(array.reshape(h, w, c).transpose(2, 0, 1).copy())
        if x.dtype == torch.uint8:
            return x.reshape(-1).to(torch.float32) / 255.0
        return x.reshape(-1)

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        x = [self.read(i) for i in idx.tolist()]
        return (torch.stack(x) if x else torch.empty(0, self.dim)), self.labels[idx]


def folder_files(folder: Path, key: str) -> tuple[list[Path], list[int], list[str]]:
    """The image files of ``folder`` with their labels and the names of the classes (the
    class subfolders' names, sorted; none for a flat folder)."""
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise DataError(f"{key} = '{folder}' {what}; give a folder of images")
    entries = _visible(folder)
    dirs = [p for p in entries if p.is_dir()]
    if not entries:
        raise DataError(f"{key} = '{folder}' is an empty folder; put images in it")
    if dirs and len(dirs) != len(entries):
        stray = next(p for p in entries if not p.is_dir())
        raise DataError(
            f"{key} = '{folder}' holds both class subfolders and the file '{stray.name}'; put "
            "every image in a class subfolder, or no subfolders at all"
        )
    groups = [(d, i) for i, d in enumerate(dirs)] if dirs else [(folder, NO_LABEL)]
    paths: list[Path] = []
    labels: list[int] = []
    for group, label in groups:
        files = _visible(group)
        if not files:
            raise DataError(f"class folder '{group}' is empty; put images in it or remove it")
        for path in files:
            if path.is_dir() or path.suffix.lower() not in image_suffixes():
                raise DataError(
                    f"'{path}' is not an image (expected a format Pillow reads: names ending "
                    f"in .png, .jpg, .bmp, .tif, .webp, .gif, ...); remove it from {key} = "
                    f"'{folder}'"
                )
            paths.append(path)
            labels.append(label)
    return paths, labels, [d.name for d in dirs]


def read_folder(
    folder: Path, key: str, image_size: Sequence[int], channels: int
) -> tuple[FolderExamples, str]:
    """The images under ``folder`` (config key ``key``) and the SHA-256 of their files.

    Every image's header is read now (not its pixels), so that a file that is no image, or
    one whose size or mode differs from the first's when ``image_size`` / ``channels`` are
    not given (0 or empty), is a :class:`DataError` naming it before training starts."""
    paths, labels, class_names = folder_files(folder, key)
    first: tuple[tuple[int, int], int] | None = None
    for path in _progress(paths, "reading the images' headers"):
        with open_image(path) as image:
            size, mode = image.size, image.mode
        found = (size, 1 if mode in GREY_MODES else 3)
        if first is None:
            first, first_path = found, path
            continue
        if not image_size and found[0] != first[0]:
            raise DataError(
                f"image '{path}' is {size[0]}x{size[1]} pixels, but the first image "
                f"'{first_path}' is {first[0][0]}x{first[0][1]}; set data.image_size = "
                f"[{first[0][1]}, {first[0][0]}] to resize every image"
            )
        if not channels and found[1] != first[1]:
            names = {1: "grey", 3: "colour"}
            raise DataError(
                f"image '{path}' is {names[found[1]]} ({mode}), but the first image "
                f"'{first_path}' is {names[first[1]]}; set data.channels = 1 or 3 to "
                "convert every image"
            )
    assert first is not None
    (w, h), c = first
    if image_size:
        h, w = image_size
    shape = (channels or c, h, w)
    examples = FolderExamples(paths, labels, class_names, shape, bool(image_size), f"'{folder}'")
    return examples, file_sha256(paths, folder)


def _array_sha256(path: Path) -> str:
    return file_sha256([path], path.parent)


#: the key pairs of an ``.npz`` file: (train images, test images, train labels, test labels)
NPZ_LAYOUTS = (("x_train", "x_test", "y_train", "y_test"), ("train", "test", None, None))


def read_array_file(path: Path, key: str) -> tuple[Examples, Examples | None, str]:
    """``(train, test or None, sha256)`` of the ``.npy`` or ``.npz`` file ``path`` (config
    key ``key``); a ``.npy`` file is memory-mapped, so it may be larger than memory."""
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise DataError(f"{key} = '{path}' {what}; give a .npy or .npz file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"{key} = '{path}' is not a .npy or .npz file")
    try:
        if suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return ArrayExamples(array, None, f"'{path}'"), None, _array_sha256(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays: dict[str, Any] = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # a truncated or damaged file: its zip directory or a member's bytes are missing
        raise DataError(
            f"{key} = '{path}' cannot be read as a NumPy array file ({exc}); it may be "
            "truncated or damaged: write it again"
        ) from None
    for x_train, x_test, y_train, y_test in NPZ_LAYOUTS:
        if x_train in arrays:

            def labels(name: str | None) -> Any:
                return arrays.get(name) if name else None

            train = ArrayExamples(arrays[x_train], labels(y_train), f"'{path}' [{x_train}]")
            test = (
                ArrayExamples(arrays[x_test], labels(y_test), f"'{path}' [{x_test}]")
                if x_test in arrays
                else None
            )
            if test is not None and test.item_shape != train.item_shape:
                raise DataError(
                    f"'{path}' holds {x_train} of item shape {train.item_shape} but {x_test} of "
                    f"{test.item_shape}; they must be alike"
                )
            return train, test, _array_sha256(path)
    raise DataError(
        f"{key} = '{path}' holds the arrays {', '.join(sorted(arrays)) or '(none)'}; expected "
        "x_train (with x_test, y_train, y_test: the layout of Keras's mnist.npz) or train "
        "(with test)"
    )
