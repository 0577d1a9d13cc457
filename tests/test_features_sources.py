"""Inputs to `extract`: files, directories and globs; name collisions; --shard I/N."""

from __future__ import annotations

from pathlib import Path

import pytest

from readcli.errors import InvalidValueError
from readcli.features.sources import Shard, collect_sources, parse_shard, take_shard


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_directories_recurse_for_video_extensions_and_named_files_are_kept(tmp_path: Path) -> None:
    _touch(tmp_path / "d" / "b.mp4")
    _touch(tmp_path / "d" / "sub" / "a.MKV")
    _touch(tmp_path / "d" / "notes.txt")  # not a video extension: ignored inside a directory
    named = _touch(tmp_path / "c.txt")  # named explicitly: kept, decoding will judge it
    sources, problems = collect_sources([str(tmp_path / "d"), str(named)])
    assert problems == []
    assert [s.name for s in sources] == ["a", "b", "c"]
    assert all(s.problem is None for s in sources)


def test_globs_expand_and_an_empty_match_is_a_problem(tmp_path: Path) -> None:
    for name in ("x1.mp4", "x2.mp4", "y.mp4"):
        _touch(tmp_path / name)
    sources, problems = collect_sources([str(tmp_path / "x*.mp4"), str(tmp_path / "z*.mp4")])
    assert [s.name for s in sources] == ["x1", "x2"]
    assert len(problems) == 1 and "no files match" in problems[0]


def test_missing_file_is_passed_on_and_duplicates_collapse(tmp_path: Path) -> None:
    video = _touch(tmp_path / "v.mp4")
    (tmp_path / "sub").mkdir()
    same = f"{tmp_path}/sub/../v.mp4"  # another spelling of the same file
    sources, problems = collect_sources([str(video), same, str(tmp_path / "gone.mp4")])
    assert problems == []
    assert [s.name for s in sources] == ["gone", "v"]


def test_same_stem_in_two_folders_marks_both_as_failed(tmp_path: Path) -> None:
    first, second = _touch(tmp_path / "a" / "clip.mp4"), _touch(tmp_path / "b" / "clip.mkv")
    other = _touch(tmp_path / "a" / "other.mp4")
    sources, _ = collect_sources([str(first), str(second), str(other)])
    by_name = {(s.name, s.path.parent.name): s for s in sources}
    assert by_name[("other", "a")].problem is None
    for key, clash in ((("clip", "a"), second), (("clip", "b"), first)):
        problem = by_name[key].problem
        assert problem is not None and str(clash.resolve()) in problem and "--out" in problem


@pytest.mark.parametrize(
    ("text", "expected"), [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 1 / 2 ", Shard(1, 2))]
)
def test_shard_parses(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected
    assert parse_shard(None) is None


@pytest.mark.parametrize("text", ["4/4", "1/0", "-1/3", "a/b", "2", "1/2/3", ""])
def test_bad_shard_names_the_value_and_the_rule(text: str) -> None:
    with pytest.raises(InvalidValueError, match=r"--shard .*0\.\.N-1"):
        parse_shard(text)


def test_shards_partition_the_sorted_list(tmp_path: Path) -> None:
    for i in range(7):
        _touch(tmp_path / f"v{i}.mp4")
    sources, _ = collect_sources([str(tmp_path)])
    parts = [take_shard(sources, Shard(i, 3)) for i in range(3)]
    names = [s.name for part in parts for s in part]
    assert sorted(names) == [s.name for s in sources] and len(names) == len(set(names))
    assert [s.name for s in parts[1]] == ["v1", "v4"]
    assert take_shard(sources, None) == sources
