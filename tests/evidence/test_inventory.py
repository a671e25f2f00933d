from pathlib import Path

from chrono.evidence.context import EvidenceRun
from chrono.evidence.inventory import assign_groups, build_inventory


def _tree(root: Path) -> None:
    (root / "a").mkdir(parents=True)
    (root / "a" / "one.txt").write_text("hello one\n")
    (root / "a" / "copy.txt").write_text("hello one\n")
    vol = root / "VOL001"
    (vol / "DATA").mkdir(parents=True)
    (vol / "TEXT").mkdir()
    (vol / "DATA" / "VOL001.dat").write_bytes("þBEGBATESþ\x14þTEXTPATHþ\r\n".encode())
    (vol / "TEXT" / "A1.txt").write_text("text of A1\n")
    (vol / "TEXT" / "A2.txt").write_text("text of A2\n")
    (root / "z.txt").write_text("zed\n")


def test_inventory_hashes_types_and_keeps_volumes_together(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    (src / "link").symlink_to("/etc/hostname")
    run = EvidenceRun(source_dir=src, artifact_dir=tmp_path / "out", show_progress=False)
    entries = build_inventory(run)
    by_path = {e.path: e for e in entries}
    assert by_path["a/one.txt"].sha256 == by_path["a/copy.txt"].sha256
    assert by_path["link"].kind == "link"
    vol = {e.family_id for e in entries if e.path.startswith("VOL001/")}
    assert len(vol) == 1
    groups = assign_groups(entries, batch_size=2)
    vol_groups = {e.group for e in entries if e.path.startswith("VOL001/")}
    assert len(vol_groups) == 1
    assert sum(g["files"] for g in groups) == len(entries)
    assert all(g["files"] >= 2 for g in groups[:-1])
