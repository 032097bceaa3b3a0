import csv

import pytest

from sercli.corpora import (
    PAPER_CLASSES,
    Clip,
    harmonise,
    paper_split,
    parse_name,
    read_manifest,
    scan,
    speaker_split,
    split_of,
    splits_of,
    unsplittable,
    write_manifest,
)
from sercli.errors import CorpusError

from .conftest import CORPUS_NAMES, speechlike


@pytest.mark.parametrize("rel,expected", sorted(CORPUS_NAMES.items()))
def test_parse_every_naming(rel, expected):
    clip = parse_name(rel)
    assert clip is not None, rel
    assert (clip.corpus, clip.speaker, clip.label) == expected


@pytest.mark.parametrize(
    "name",
    [
        "notes.wav",
        "03-01-09-01-01-01-01.wav",
        "1001_DFA_XYZ_XX.wav",
        "OAF_back_bored.wav",
        "ZZ_a01.wav",
        "random/take1.wav",
    ],
)
def test_unknown_names_do_not_match(name):
    assert parse_name(name) is None


def test_sex_from_naming():
    assert parse_name("03-01-05-01-01-01-07.wav").sex == "male"
    assert parse_name("03-01-05-01-01-01-08.wav").sex == "female"
    assert parse_name("emodb/09a01Fa.wav").sex == "female"
    assert parse_name("savee/DC/sa01.wav").corpus == "savee"


def test_harmonise_aliases():
    assert [harmonise(x) for x in ("Anger", "sadness", "PS", "fearful", "Boredom", "surprised")] == [
        "angry",
        "sad",
        "surprise",
        "fear",
        "boredom",
        "surprise",
    ]


def test_scan_mixed_tree_counts_unmatched(tmp_path, rng):
    import soundfile as sf

    for rel in list(CORPUS_NAMES) + ["misc/unknown take.flac"]:
        p = tmp_path / "data" / "deep" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, speechlike(rng, 0.3), 16000)
    s = scan(tmp_path / "data")
    assert len(s.clips) == len(CORPUS_NAMES)
    assert [p.endswith("unknown take.flac") for p in s.unmatched] == [True]
    # sex is filled from the canonical speaker table for corpora whose names lack it
    cremad = [c for c in s.clips if c.corpus == "cremad" and c.speaker == "1001"]
    assert cremad[0].sex == "male"


def test_manifest_roundtrip(tmp_path):
    (tmp_path / "m.csv").write_text("path,label,speaker\na/x.wav,Anger,s1\n/abs/y.wav,sadness,\n")
    clips = read_manifest(tmp_path / "m.csv")
    assert clips[0] == Clip(str(tmp_path / "a/x.wav"), "manifest", "s1", "angry", None)
    assert clips[1].path == "/abs/y.wav" and clips[1].label == "sad" and clips[1].speaker is None
    out = tmp_path / "out.csv"
    write_manifest(clips, out)
    rows = list(csv.DictReader(out.open()))
    assert [r["label"] for r in rows] == ["angry", "sad"]
    assert set(rows[0]) == {"path", "corpus", "speaker", "label", "sex", "split"}


def test_manifest_needs_columns(tmp_path):
    (tmp_path / "m.csv").write_text("file,emotion\nx.wav,angry\n")
    with pytest.raises(CorpusError, match="path and label"):
        read_manifest(tmp_path / "m.csv")


def test_canonical_split_covers_all_speakers():
    table = speaker_split()
    assert len(table) == 121
    assert set(table.values()) == {"train", "val", "test"}
    assert table[("tess", "YAF")] == "test" and table[("tess", "OAF")] == "train"
    assert split_of(Clip("x", "cremad", "1004", "angry")) == "test"
    assert split_of(Clip("x", "emodb", "03", "angry")) is None


def test_paper_split_is_balanced_stratified_and_seeded():
    clips = [
        Clip(f"{lab}{i}.wav", "c", str(i % 7), lab)
        for lab in PAPER_CLASSES + ("neutral",)
        for i in range(40 if lab != "fear" else 20)
    ]
    a = paper_split(clips, seed=3)
    b = paper_split(clips, seed=3)
    assert a == b
    for part, n in (("train", 14), ("val", 3), ("test", 3)):
        labels = [c.label for c in a[part]]
        assert sorted(set(labels)) == sorted(PAPER_CLASSES)
        assert all(labels.count(lab) == n for lab in PAPER_CLASSES)
    paths = [c.path for part in a.values() for c in part]
    assert len(paths) == len(set(paths)) == 100
    assert paper_split(clips, seed=4) != a


# A lab's own corpus: speakers outside speakers.csv


def test_own_speakers_get_whole_speaker_splits_stable_in_any_subset():
    canon = Clip("/c/1001_DFA_ANG_XX.wav", "cremad", "1001", "angry", None)
    own = [Clip(f"/own/s{i}/{j}.wav", "lab", f"s{i}", "sad", None) for i in range(400) for j in range(3)]
    splits = splits_of([canon] + own)
    assert splits[0] == split_of(canon)  # the canonical split is kept
    by_speaker = {}
    for c, s in zip(own, splits[1:]):
        by_speaker.setdefault(c.speaker, set()).add(s)
    assert all(len(v) == 1 for v in by_speaker.values())  # a speaker is never in two splits
    shares = {s: sum(1 for v in by_speaker.values() if v == {s}) / 400 for s in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.70, abs=0.07)
    assert shares["val"] == pytest.approx(0.15, abs=0.05) and shares["test"] == pytest.approx(0.15, abs=0.05)
    # a subset (another folder, another run) keeps every speaker's split
    subset = own[::7]
    assert splits_of(subset) == [splits[1 + own.index(c)] for c in subset]
    # the corpus is part of the key: the same speaker id in another corpus is another speaker
    other = [Clip(f"/x/s{i}.wav", "lab2", f"s{i}", "sad", None) for i in range(400)]
    assert splits_of(other) != [by_speaker[f"s{i}"].copy().pop() for i in range(400)]


def test_clips_without_a_speaker_are_split_by_file_and_counted():
    clips = [Clip(f"/own/{lab}/take{i}.wav", "folder", None, lab, None) for lab in ("sad", "happy") for i in range(300)]
    splits = splits_of(clips)
    assert {"train", "val", "test"} == set(splits)
    assert unsplittable(clips) == 600
    # by file name: the same file elsewhere gets the same split
    moved = [Clip(c.path.replace("/own/", "/mnt/backup/"), c.corpus, None, c.label, None) for c in clips]
    assert splits_of(moved) == splits
    assert unsplittable([Clip("/c/1001_DFA_ANG_XX.wav", "cremad", "1001", "angry", None)]) == 0


def test_scan_counts_a_file_a_manifest_lists_once(tmp_path, rng):
    """A manifest inside a folder-per-label tree: each file is one clip, with the manifest's speaker."""
    import soundfile as sf

    rows = ["path,label,speaker"]
    for lab in ("angry", "sad"):
        for i in range(3):
            p = tmp_path / lab / f"t{i}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(p, speechlike(rng, 0.3), 16000)
            rows.append(f"{lab}/t{i}.wav,{lab},spk{i}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "again.csv").write_text("\n".join(rows[:2]) + "\n")  # listed twice: still once
    s = scan(tmp_path)
    assert len(s.clips) == 6 and not s.unmatched
    assert {c.speaker for c in s.clips} == {"spk0", "spk1", "spk2"}
