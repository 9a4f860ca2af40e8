"""Labelled image sets: one reader for every program that trains on or evaluates labelled faces.

Three layouts are read, and mean the same thing wherever they are used:
- a folder with one subfolder of images per class (`real/`, `stylegan2/`, ...); every file is its own source;
- a CSV `path,label[,group]` (header row optional; paths relative to the CSV; group defaults to the path and
  should name the source, e.g. the repository, when it is known);
- the development face set's `provenance.csv` (columns class, file, repo, path_in_repo): the source is `repo`,
  and repo + folder of `path_in_repo` is a finer unit for classes that come from a single repository.

The source matters because accuracy is judged only on sources a model has not seen: augmented copies of one
image, or images of one repository, must never straddle training and validation.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.errors import InputError
from core.images import IMAGE_SUFFIXES, list_images

PROVENANCE_COLUMNS = frozenset({"class", "file", "repo"})


@dataclass(frozen=True)
class LabelledImage:
    """One labelled image: `name` identifies it in outputs (its path as the dataset writes it), `group` is its
    source, `subgroup` a finer source unit (the group itself unless the dataset knows better)."""

    path: Path
    label: str
    group: str
    subgroup: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "subgroup", self.subgroup or self.group)
        object.__setattr__(self, "name", self.name or str(self.path))


def read_dataset(source: Path, classes: Sequence[str] | None = None) -> tuple[list[LabelledImage], str]:
    """Every image of a folder or CSV (only `classes`, when given), sorted by name, and the layout's kind.

    The order is fixed by the names, so seeds and shard slices mean the same images on every machine. Raises
    InputError for a path that is neither, an empty class folder, a malformed CSV row, a name listed twice or no
    image at all.
    """
    source = Path(source)
    if source.is_dir():
        items, kind = _read_folder(source, classes), "folder"
    elif source.is_file() and source.suffix.lower() == ".csv":
        items, kind = _read_csv(source, classes)
    else:
        raise InputError(f"{source}: not a folder of class subfolders nor a .csv file")
    if not items:
        wanted = f" of the classes {', '.join(classes)}" if classes else ""
        raise InputError(f"{source}: no input images{wanted}")
    names = Counter(item.name for item in items)
    repeated = [name for name, count in names.items() if count > 1]
    if repeated:
        raise InputError(f"{source}: {repeated[0]} is listed {names[repeated[0]]} times")
    return sorted(items, key=lambda item: item.name), kind


def limit_per_class(items: Sequence[LabelledImage], limit: int, seed: int = 0) -> list[LabelledImage]:
    """At most `limit` images per class: a seeded random pick taken round-robin over sources, sorted by name.

    Round-robin keeps several sources in a small subset (a sorted prefix would come from one source only); with
    one image per source (class folders) it is a plain seeded random sample.
    """
    kept = []
    for label in sorted({item.label for item in items}):
        members = [item for item in items if item.label == label]
        random.Random(f"{seed}:{label}").shuffle(members)
        by_group: dict[str, list[LabelledImage]] = {}
        for item in members:
            by_group.setdefault(item.group, []).append(item)
        queues = list(by_group.values())
        picked: list[LabelledImage] = []
        while len(picked) < limit and queues:
            picked += [queue.pop(0) for queue in queues][:limit - len(picked)]
            queues = [queue for queue in queues if queue]
        kept += picked
    return sorted(kept, key=lambda item: item.name)


def images_under(folder: Path, recursive: bool) -> list[Path]:
    """Image files inside `folder` (and its subfolders when `recursive`), sorted."""
    if not recursive:
        return list_images(folder)
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_folder(root: Path, classes: Sequence[str] | None) -> list[LabelledImage]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = []
    for folder in folders:
        if classes is not None and folder.name not in classes:
            continue
        files = list_images(folder)
        if not files:
            raise InputError(f"class folder {folder} has no images (looked for "
                             f"{' '.join(sorted(IMAGE_SUFFIXES))} files directly inside it); remove it or add images")
        for file in files:
            name = f"{folder.name}/{file.name}"
            items.append(LabelledImage(path=file, label=folder.name, group=name, name=name))
    return items


def _read_csv(path: Path, classes: Sequence[str] | None) -> tuple[list[LabelledImage], str]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = [cell.strip() for cell in rows[0]] if rows else []
    if PROVENANCE_COLUMNS <= set(header):
        items = [_provenance_item(path, dict(zip(header, row))) for row in rows[1:]
                 if any(cell.strip() for cell in row)]
        kind = "provenance"
    else:
        items = [_plain_item(path, number, row) for number, row in enumerate(rows, start=1)
                 if any(cell.strip() for cell in row) and not (number == 1 and row[0].strip().lower() == "path")]
        kind = "csv"
    return [item for item in items if classes is None or item.label in classes], kind


def _plain_item(path: Path, number: int, row: list[str]) -> LabelledImage:
    cells = [cell.strip() for cell in row]
    if len(cells) < 2 or not cells[0] or not cells[1]:
        raise InputError(f"{path}, line {number}: expected path,label[,group], got {','.join(row)!r}")
    group = cells[2] if len(cells) > 2 and cells[2] else cells[0]
    return LabelledImage(path=path.parent / cells[0], label=cells[1], group=group, name=cells[0])


def _provenance_item(path: Path, row: dict[str, str]) -> LabelledImage:
    folder = PurePosixPath(row.get("path_in_repo") or "").parent
    return LabelledImage(path=path.parent / row["file"], label=row["class"], group=row["repo"],
                         subgroup=f"{row['repo']}:{folder}", name=row["file"])
