"""Archive extractor on generated hostile and ordinary archives (zip, 7z, tar, gzip/bzip2/xz)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import stat
import struct
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import py7zr
import pytest
import pyzipper

from chrono.core.config import EvidenceConfig, ExtractionLimits
from chrono.evidence.extract.archive import decompressed_name, is_unsafe_entry_name
from chrono.evidence.extract.base import ExtractContext, SourceFile, run_extractor
from chrono.evidence.model import Artifact

MiB = 1 << 20


def extract(
    path: Path,
    kind: str,
    out: Path,
    passwords: tuple[str, ...] = (),
    depth: int = 0,
    **limits: int | float,
) -> Artifact:
    data = path.read_bytes()
    source = SourceFile(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind=kind,
        name=path.name, depth=depth,
    )
    config = EvidenceConfig(limits=ExtractionLimits(**limits))  # type: ignore[arg-type]
    ctx = ExtractContext(config=config, artifact_dir=out, passwords=passwords, depth=depth)
    return run_extractor(source, ctx)


def child_bytes(out: Path, artifact: Artifact) -> dict[str, bytes]:
    return {c.name: (out / c.blob).read_bytes() for c in artifact.children}


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return path


def write_raw_zip(
    path: Path,
    entries: Sequence[tuple[str | bytes, bytes, int, int]],
    extra: bytes = b"",
    flags: int = 0,
) -> Path:
    """Write a zip from already-deflated data: (name, deflated, crc32, uncompressed size).

    A ``bytes`` name is written as is, without the UTF-8 flag; ``extra`` and ``flags`` go in
    every header."""
    body = io.BytesIO()
    central = io.BytesIO()
    for name, deflated, crc, size in entries:
        offset = body.tell()
        encoded = name if isinstance(name, bytes) else name.encode()
        body.write(struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, flags, 8, 0, 0x21, crc, len(deflated), size,
            len(encoded), len(extra),
        ))
        body.write(encoded + extra + deflated)
        central.write(struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, 8, 0, 0x21, crc, len(deflated), size,
            len(encoded), len(extra), 0, 0, 0, 0, offset,
        ))
        central.write(encoded + extra)
    directory = central.getvalue()
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory),
        body.tell(), 0,
    )
    path.write_bytes(body.getvalue() + directory + end)
    return path


def deflated_zeros(mebibytes: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``mebibytes`` MiB of zeros, built without compressing them all."""
    zeros = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    # after a full flush the compressor starts afresh, so the same block repeats validly
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    return block * mebibytes + b"\x03\x00", crc


def test_deflated_zeros_helper_is_valid_deflate() -> None:
    data, crc = deflated_zeros(3)
    inflated = zlib.decompress(data, -15)
    assert inflated == bytes(3 * MiB) and zlib.crc32(inflated) == crc


# --- bombs and limits --------------------------------------------------------------------------


def test_zip_bomb_is_refused_before_decompressing(tmp_path: Path) -> None:
    deflated, crc = deflated_zeros(1024)  # 1 GiB of zeros in about 1 MiB
    bomb = write_raw_zip(tmp_path / "bomb.zip", [("zeros.bin", deflated, crc, 1024 * MiB)])
    out = tmp_path / "out"
    tracemalloc.start()
    started = time.perf_counter()
    try:
        artifact = extract(bomb, "zip", out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (artifact.status, artifact.reason) == ("failed", "limit_ratio")
    assert time.perf_counter() - started < 5
    assert peak < 16 * MiB
    assert files_under(tmp_path) == [bomb]


def test_zip_bomb_beside_good_entry_is_refused_alone(tmp_path: Path) -> None:
    deflated, crc = deflated_zeros(64)
    good = zlib.compressobj(9, zlib.DEFLATED, -15)
    text = b"meeting notes\n" * 10
    good_deflated = good.compress(text) + good.flush()
    archive = write_raw_zip(tmp_path / "mixed.zip", [
        ("notes.txt", good_deflated, zlib.crc32(text), len(text)),
        ("zeros.bin", deflated, crc, 64 * MiB),
    ])
    artifact = extract(archive, "zip", tmp_path / "out")
    assert artifact.status == "processed"
    assert child_bytes(tmp_path / "out", artifact) == {"notes.txt": text}
    assert artifact.warnings == ["limit_ratio"]
    assert artifact.metadata == {"entries": 2, "extracted": 1, "refused": 1, "encrypted": False}


def test_small_highly_compressible_entry_is_not_a_bomb(tmp_path: Path) -> None:
    text = b" " * (512 * 1024)  # ratio ~1000, but under the 1 MiB floor
    archive = write_zip(tmp_path / "spaces.zip", {"spaces.txt": text})
    artifact = extract(archive, "zip", tmp_path / "out")
    assert artifact.status == "processed"
    assert child_bytes(tmp_path / "out", artifact) == {"spaces.txt": text}


def test_gzip_tar_bomb_is_stopped_while_streaming(tmp_path: Path) -> None:
    """A tgz declares nothing up front: the ratio is enforced on the bytes actually streamed."""
    bomb = tmp_path / "bomb.tar.gz"
    size = 64 * MiB  # gzip level 6 holds zeros at ~1000:1
    with gzip.open(bomb, "wb", compresslevel=6) as gz:
        header = tarfile.TarInfo("zeros.bin")
        header.size = size
        gz.write(header.tobuf(format=tarfile.GNU_FORMAT))
        zeros = bytes(MiB)
        for _ in range(size // MiB):
            gz.write(zeros)
        gz.write(bytes(1024))
    out = tmp_path / "out"
    tracemalloc.start()
    started = time.perf_counter()
    try:
        artifact = extract(bomb, "gzip", out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (artifact.status, artifact.reason) == ("failed", "limit_ratio")
    assert time.perf_counter() - started < 5
    assert peak < 24 * MiB
    assert files_under(out) == []  # the partial entry was removed


def test_bare_gzip_bomb_is_stopped_while_streaming(tmp_path: Path) -> None:
    bomb = tmp_path / "zeros.bin.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as gz:
        for _ in range(64):
            gz.write(bytes(MiB))
    artifact = extract(bomb, "gzip", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "limit_ratio")
    assert files_under(tmp_path / "out") == []


def test_total_size_is_enforced_on_streamed_tar_bytes(tmp_path: Path) -> None:
    archive = tmp_path / "big.tar"
    with tarfile.open(archive, "w") as tar:
        for index in range(3):
            info = tarfile.TarInfo(f"part{index}.bin")
            info.size = MiB
            tar.addfile(info, io.BytesIO(bytes([index]) * MiB))
    artifact = extract(archive, "tar", tmp_path / "out", max_archive_total_bytes=2 * MiB)
    assert (artifact.status, artifact.reason) == ("failed", "limit_size")


def test_zip_declared_total_over_limit_fails_up_front(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "two.zip", {"a.bin": bytes(MiB), "b.bin": bytes(MiB)})
    artifact = extract(archive, "zip", tmp_path / "out", max_archive_total_bytes=MiB)
    assert (artifact.status, artifact.reason) == ("failed", "limit_size")
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_too_many_entries_fails(tmp_path: Path, kind: str) -> None:
    entries = {f"f{index}.txt": f"entry {index}".encode() for index in range(6)}
    if kind == "zip":
        archive = write_zip(tmp_path / "many.zip", entries)
    else:
        archive = tmp_path / "many.tar"
        with tarfile.open(archive, "w") as tar:
            for name, data in entries.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    artifact = extract(archive, kind, tmp_path / "out", max_archive_entries=5)
    assert (artifact.status, artifact.reason) == ("failed", "limit_entries")
    assert extract(archive, kind, tmp_path / "ok", max_archive_entries=6).status == "processed"


def test_archive_too_deep_fails_limit_depth(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "deep.zip", {"a.txt": b"a"})
    artifact = extract(archive, "zip", tmp_path / "out", depth=5, max_nesting_depth=5)
    assert (artifact.status, artifact.reason) == ("failed", "limit_depth")
    assert extract(archive, "zip", tmp_path / "ok", depth=4, max_nesting_depth=5).children


# --- names, links, duplicates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "..\\evil.txt", "C:\\evil.txt",
     "c:/evil.txt", "\\\\server\\share\\evil.txt", "dir\\..\\..\\evil.txt"],
)
def test_unsafe_names(name: str) -> None:
    assert is_unsafe_entry_name(name)


@pytest.mark.parametrize("name", ["good.txt", "dir/sub/file.txt", "a..b.txt", "..hidden", "x/./y"])
def test_safe_names(name: str) -> None:
    assert not is_unsafe_entry_name(name)


def test_zip_traversal_forms_are_refused(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "slip.zip", {
        "docs/": b"",
        "good.txt": b"good",
        "../../evil1.txt": b"evil",
        "/tmp/evil2.txt": b"evil",
        "C:\\evil3.txt": b"evil",
        "..\\..\\evil4.txt": b"evil",
    })
    out = tmp_path / "out"
    artifact = extract(archive, "zip", out)
    assert artifact.status == "processed"
    assert child_bytes(out, artifact) == {"good.txt": b"good"}
    assert artifact.warnings == ["path_traversal"] * 4
    assert artifact.metadata == {"entries": 6, "extracted": 1, "refused": 4, "encrypted": False}
    assert not list(tmp_path.parent.glob("evil*")) and not Path("/tmp/evil2.txt").exists()
    assert [p.relative_to(out).parts[0] for p in files_under(out)] == ["blobs"]


def test_zip_with_only_traversal_entry_fails(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "slip.zip", {"../evil.txt": b"evil"})
    artifact = extract(archive, "zip", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "path_traversal")
    assert "evil" not in (artifact.detail or "")


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def test_legacy_names_use_unicode_path_field_or_utf8(tmp_path: Path) -> None:
    gbk = "副本.txt".encode("gbk")
    field_data = b"\x01" + struct.pack("<L", zlib.crc32(gbk)) + "副本.txt".encode()
    extra = struct.pack("<HH", 0x7075, len(field_data)) + field_data
    data = b"copy"
    with_field = write_raw_zip(
        tmp_path / "field.zip", [(gbk, deflate(data), zlib.crc32(data), len(data))], extra
    )
    artifact = extract(with_field, "zip", tmp_path / "a")
    assert [c.name for c in artifact.children] == ["副本.txt"]
    utf8_unflagged = write_raw_zip(
        tmp_path / "utf8.zip", [("é.txt".encode(), deflate(data), zlib.crc32(data), len(data))]
    )
    artifact = extract(utf8_unflagged, "zip", tmp_path / "b")
    assert [c.name for c in artifact.children] == ["é.txt"]
    bare_gbk = write_raw_zip(
        tmp_path / "gbk.zip", [(gbk, deflate(data), zlib.crc32(data), len(data))]
    )
    artifact = extract(bare_gbk, "zip", tmp_path / "c")
    assert artifact.status == "processed"
    assert [c.name for c in artifact.children] == [gbk.decode("cp437")]


def test_zip_symlink_entry_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("real.txt", b"real")
    artifact = extract(archive, "zip", tmp_path / "out")
    assert child_bytes(tmp_path / "out", artifact) == {"real.txt": b"real"}
    assert artifact.warnings == ["link_refused"]


def test_tgz_symlink_hardlink_and_device_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"evidence"
        info = tarfile.TarInfo("docs/real.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, kind in [("docs/sym", tarfile.SYMTYPE), ("docs/hard", tarfile.LNKTYPE),
                           ("docs/dev", tarfile.CHRTYPE), ("docs/fifo", tarfile.FIFOTYPE)]:
            link = tarfile.TarInfo(name)
            link.type = kind
            link.linkname = "/etc/passwd" if kind != tarfile.LNKTYPE else "docs/real.txt"
            tar.addfile(link)
        folder = tarfile.TarInfo("docs/sub")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    out = tmp_path / "out"
    artifact = extract(archive, "gzip", out)
    assert artifact.status == "processed"
    assert child_bytes(out, artifact) == {"docs/real.txt": b"evidence"}
    assert artifact.warnings == ["link_refused"] * 4
    assert artifact.metadata == {"entries": 6, "extracted": 1, "refused": 4, "encrypted": False}
    assert not [p for p in out.rglob("*") if p.is_symlink()]


def test_tar_duplicate_names_are_both_stored(tmp_path: Path) -> None:
    archive = tmp_path / "dup.tar"
    with tarfile.open(archive, "w") as tar:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("same.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    artifact = extract(archive, "tar", out)
    assert sorted((out / c.blob).read_bytes() for c in artifact.children) == [b"first", b"second"]
    assert artifact.warnings == ["duplicate_entry"]


# --- encryption --------------------------------------------------------------------------------


def test_aes_zip_written_by_pyzipper_round_trips(tmp_path: Path) -> None:
    archive = tmp_path / "aes.zip"
    secret = b"privileged memo\n" * 100
    with pyzipper.AESZipFile(
        archive, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as zf:
        zf.setpassword(b"s3cret pass")
        zf.writestr("memo.txt", secret)
    out = tmp_path / "out"
    artifact = extract(archive, "zip", out, ("decoy", "s3cret pass"))
    assert artifact.status == "processed"
    assert child_bytes(out, artifact) == {"memo.txt": secret}
    assert artifact.metadata["encrypted"] is True
    failed = extract(archive, "zip", tmp_path / "bad", ("decoy",))
    assert (failed.status, failed.reason) == ("failed", "wrong_password")
    assert "decoy" not in failed.model_dump_json()


def zipcrypto_encrypt(password: bytes, crc: int, data: bytes) -> bytes:
    """Traditional PKWARE (ZipCrypto) encryption: 12-byte header, then the encrypted data."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc_step(value: int, byte: int) -> int:
        return zlib.crc32(bytes([byte]), value ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def update(byte: int) -> None:
        keys[0] = crc_step(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc_step(keys[2], keys[1] >> 24)

    def encrypt(plain: bytes) -> bytes:
        out = bytearray()
        for byte in plain:
            temp = (keys[2] | 2) & 0xFFFF
            out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            update(byte)
        return bytes(out)

    for byte in password:
        update(byte)
    header = bytes(range(11)) + bytes([crc >> 24])  # last byte: the password check value
    return encrypt(header) + encrypt(data)


def test_zipcrypto_entries_with_different_passwords(tmp_path: Path) -> None:
    entries = [("alpha.txt", b"first secret\n" * 20, b"alpha-pw"),
               ("beta.txt", b"second secret\n" * 20, b"beta-pw")]
    raw = [
        (name, zipcrypto_encrypt(password, zlib.crc32(data), deflate(data)), zlib.crc32(data),
         len(data))
        for name, data, password in entries
    ]
    archive = write_raw_zip(tmp_path / "zipcrypto.zip", raw, flags=0x1)
    out = tmp_path / "out"
    artifact = extract(archive, "zip", out, ("beta-pw", "alpha-pw"))
    assert artifact.status == "processed", artifact.reason
    assert child_bytes(out, artifact) == {name: data for name, data, _ in entries}
    assert artifact.metadata["encrypted"] is True
    partial = extract(archive, "zip", tmp_path / "partial", ("alpha-pw",))
    assert [c.name for c in partial.children] == ["alpha.txt"]
    assert partial.warnings == ["wrong_password"]
    none = extract(archive, "zip", tmp_path / "none")
    assert (none.status, none.reason) == ("failed", "password_required")


def write_7z(path: Path, entries: dict[str, bytes], password: str | None, headers: bool) -> Path:
    with py7zr.SevenZipFile(path, "w", password=password, header_encryption=headers) as archive:
        for name, data in entries.items():
            archive.writestr(data, name)
    return path


@pytest.mark.parametrize("header_encryption", [True, False])
def test_encrypted_7z_opens_with_password(tmp_path: Path, header_encryption: bool) -> None:
    entries = {"a.txt": b"alpha " * 50, "dir/b.txt": b"beta"}
    archive = write_7z(tmp_path / "enc.7z", entries, "open sesame", header_encryption)
    out = tmp_path / "out"
    artifact = extract(archive, "7z", out, ("wrong one", "open sesame"))
    assert artifact.status == "processed", artifact.reason
    assert child_bytes(out, artifact) == entries
    assert artifact.metadata == {"entries": 2, "extracted": 2, "refused": 0, "encrypted": True}
    wrong = extract(archive, "7z", tmp_path / "wrong", ("wrong one",))
    assert (wrong.status, wrong.reason) == ("failed", "wrong_password")
    assert "wrong one" not in wrong.model_dump_json()
    none = extract(archive, "7z", tmp_path / "none")
    assert (none.status, none.reason) == ("failed", "password_required")
    assert not [p for p in tmp_path.rglob(".spool-*")]


def test_plain_7z_and_limits(tmp_path: Path) -> None:
    entries = {"one.txt": b"one", "two/three.txt": b"three"}
    archive = write_7z(tmp_path / "plain.7z", entries, None, False)
    artifact = extract(archive, "7z", tmp_path / "out")
    assert child_bytes(tmp_path / "out", artifact) == entries
    many = extract(archive, "7z", tmp_path / "many", max_archive_entries=1)
    assert many.reason == "limit_entries"


def test_7z_bomb_refused_from_declared_sizes(tmp_path: Path) -> None:
    archive = write_7z(tmp_path / "bomb.7z", {"zeros.bin": bytes(8 * MiB)}, None, False)
    artifact = extract(archive, "7z", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "limit_ratio")


def test_truncated_7z_fails_corrupt(tmp_path: Path) -> None:
    archive = write_7z(tmp_path / "t.7z", {"a.txt": b"x" * 1000}, None, False)
    archive.write_bytes(archive.read_bytes()[:-20])
    artifact = extract(archive, "7z", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_archive")


# --- nesting and compressed streams ------------------------------------------------------------


def test_nested_zip_becomes_a_zip_child_not_recursed(tmp_path: Path) -> None:
    inner = write_zip(tmp_path / "inner.zip", {"deep.txt": b"deep"}).read_bytes()
    outer = write_zip(tmp_path / "outer.zip", {"inner.zip": inner, "top.txt": b"top"})
    out = tmp_path / "out"
    artifact = extract(outer, "zip", out)
    assert child_bytes(out, artifact) == {"inner.zip": inner, "top.txt": b"top"}
    assert {c.relation for c in artifact.children} == {"archive_entry"}


@pytest.mark.parametrize(
    ("kind", "compress", "suffix"),
    [("gzip", gzip.compress, ".gz"), ("bzip2", bz2.compress, ".bz2"), ("xz", lzma.compress, ".xz")],
)
def test_bare_compressed_file_gives_one_child(
    tmp_path: Path, kind: str, compress: object, suffix: str
) -> None:
    text = b"call log export\n" * 100
    path = tmp_path / f"calls.csv{suffix}"
    path.write_bytes(compress(text))  # type: ignore[operator]
    out = tmp_path / "out"
    artifact = extract(path, kind, out)
    assert artifact.status == "processed"
    assert child_bytes(out, artifact) == {"calls.csv": text}
    assert artifact.metadata["entries"] == 1


@pytest.mark.parametrize(("mode", "kind"), [("w:gz", "gzip"), ("w:bz2", "bzip2"), ("w:xz", "xz")])
def test_compressed_tar_lists_members(tmp_path: Path, mode: str, kind: str) -> None:
    path = tmp_path / "bundle.tar.x"
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for name, data in {"a.txt": b"a" * 700, "b/c.txt": b"c"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    artifact = extract(path, kind, out)
    assert child_bytes(out, artifact) == {"a.txt": b"a" * 700, "b/c.txt": b"c"}


def test_truncated_tgz_keeps_what_was_read(tmp_path: Path) -> None:
    path = tmp_path / "cut.tgz"
    noise = bytes(range(256)) * 1024
    noise = hashlib.shake_256(noise).digest(200_000)  # incompressible
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {"first.txt": b"first", "noise.bin": noise}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(path.read_bytes()[:100_000])
    out = tmp_path / "out"
    artifact = extract(path, "gzip", out)
    assert artifact.status == "processed"
    assert child_bytes(out, artifact) == {"first.txt": b"first"}
    assert artifact.warnings == ["corrupt_archive"]
    assert [p.name for p in out.rglob(".*")] == []


def test_gzip_that_is_not_gzip_fails_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "fake.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 10)
    artifact = extract(path, "gzip", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_archive")


def test_decompressed_names() -> None:
    assert decompressed_name("notes.txt.gz") == "notes.txt"
    assert decompressed_name("bundle.tgz") == "bundle.tar"
    assert decompressed_name("LOG.XZ") == "LOG"
    assert decompressed_name("blob") == "blob"


def test_rar_signature_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "a.rar"
    path.write_bytes(b"Rar!\x1a\x07\x01\x00" + bytes(64))
    artifact = extract(path, "rar", tmp_path / "out")
    assert (artifact.status, artifact.reason, artifact.extractor) == (
        "failed", "unsupported_rar", "archive",
    )
