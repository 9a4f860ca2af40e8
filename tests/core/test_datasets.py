"""core.datasets: class folders, CSVs and the face set's provenance.csv read into the same labelled records."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.datasets import LabelledImage, limit_per_class, read_dataset
from core.errors import InputError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded here")
    return path


def test_class_folders_give_sorted_names_with_one_source_per_file(tmp_path):
    for name in ("real/b.png", "real/a.jpg", "stylegan2/c.webp", ".hidden/d.png", "real/notes.txt"):
        _touch(tmp_path / name)
    items, kind = read_dataset(tmp_path)
    assert kind == "folder"
    assert [(i.name, i.label, i.group) for i in items] == [
        ("real/a.jpg", "real", "real/a.jpg"), ("real/b.png", "real", "real/b.png"),
        ("stylegan2/c.webp", "stylegan2", "stylegan2/c.webp")]
    assert items[0].path == tmp_path / "real" / "a.jpg" and items[0].subgroup == items[0].group


def test_empty_class_folder_is_refused_by_name_unless_its_class_is_not_wanted(tmp_path):
    _touch(tmp_path / "real" / "a.png")
    (tmp_path / "progan").mkdir()
    with pytest.raises(InputError, match="class folder .*progan has no images"):
        read_dataset(tmp_path)
    assert [i.label for i in read_dataset(tmp_path, ["real"])[0]] == ["real"]


def test_csv_without_header_defaults_the_group_to_the_path_and_names_a_bad_line(tmp_path):
    table = tmp_path / "list.csv"
    table.write_text("x/1.png,real,repo-a\nx/2.png,progan\n\n")
    items, kind = read_dataset(table)
    assert kind == "csv" and [(i.name, i.group) for i in items] == [("x/1.png", "repo-a"), ("x/2.png", "x/2.png")]
    assert items[0].path == tmp_path / "x" / "1.png"
    table.write_text("path,label\nx/1.png,real\nx/2.png\n")
    with pytest.raises(InputError, match=r"list\.csv, line 3: expected path,label\[,group\]"):
        read_dataset(table)


def test_provenance_groups_by_repository_and_subgroups_by_its_folder(tmp_path):
    table = tmp_path / "provenance.csv"
    table.write_text("class,file,repo,path_in_repo,width\n"
                     "progan,progan/a.jpg,org/one,test/fake/a.jpg,256\n"
                     "real,real/b.png,org/two,images/b.png,512\n"
                     "diffusion,diffusion/c.png,org/three,c.png,512\n")
    items, kind = read_dataset(table, ["progan", "real"])
    assert kind == "provenance"
    assert [(i.name, i.label, i.group, i.subgroup) for i in items] == [
        ("progan/a.jpg", "progan", "org/one", "org/one:test/fake"), ("real/b.png", "real", "org/two", "org/two:images")]


def test_a_file_listed_twice_is_refused(tmp_path):
    table = tmp_path / "list.csv"
    table.write_text("a.png,real\na.png,progan\n")
    with pytest.raises(InputError, match="a.png is listed 2 times"):
        read_dataset(table)


def test_limit_per_class_spreads_over_sources_and_is_reproducible():
    sizes = {"big": 10, "small": 2}
    items = [LabelledImage(Path(f"{g}/{i}.png"), "real", g) for g, n in sizes.items() for i in range(n)]
    items += [LabelledImage(Path(f"f/{i}.png"), "progan", "f") for i in range(3)]
    picked = limit_per_class(items, 4, seed=1)
    real = [i for i in picked if i.label == "real"]
    assert len(real) == 4 and sum(i.group == "small" for i in real) == 2
    assert len([i for i in picked if i.label == "progan"]) == 3
    assert picked == limit_per_class(items, 4, seed=1) and picked == sorted(picked, key=lambda i: i.name)
    assert limit_per_class(items, 4, seed=2) != picked
