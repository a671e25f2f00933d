"""Archive extractor against real third-party archives (zip4j test archives, snyk zip-slip)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from chrono.core.config import EvidenceConfig
from chrono.evidence.extract.base import ExtractContext, SourceFile, run_extractor
from chrono.evidence.model import Artifact

ZIP4J = "archives_zip4j"
ZIPSLIP = "archives_zipslip_snyk"


def extract(path: Path, kind: str, out: Path, passwords: tuple[str, ...] = ()) -> Artifact:
    data = path.read_bytes()
    source = SourceFile(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind=kind,
        name=path.name,
    )
    ctx = ExtractContext(config=EvidenceConfig(), artifact_dir=out, passwords=passwords)
    return run_extractor(source, ctx)


def blob_bytes(out: Path, artifact: Artifact, name: str) -> bytes:
    (child,) = [c for c in artifact.children if c.name == name]
    data = (out / child.blob).read_bytes()
    assert hashlib.sha256(data).hexdigest() == child.sha256
    return data


def assert_no_secrets(artifact: Artifact, *secrets: str) -> None:
    text = artifact.model_dump_json()
    for secret in secrets:
        assert secret not in text


def test_aes_zip_with_two_passwords_opens_every_entry(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(
        corpus / ZIP4J / "zip_with_different_passwords.zip", "zip", tmp_path,
        ("password_1", "password_2"),
    )
    assert artifact.status == "processed", artifact.reason
    sizes = {c.name: c.size for c in artifact.children}
    assert sizes == {
        "after_deflate_remaining_bytes.bin": 4088, "file_PDF_1MB.pdf": 1042157, "sample.pdf": 3028,
    }
    assert blob_bytes(tmp_path, artifact, "file_PDF_1MB.pdf").startswith(b"%PDF")
    assert artifact.metadata == {"entries": 3, "extracted": 3, "refused": 0, "encrypted": True}
    assert artifact.warnings == []
    assert_no_secrets(artifact, "password_1", "password_2")


@pytest.mark.parametrize(
    ("passwords", "code"), [((), "password_required"), (("password_3",), "wrong_password")]
)
def test_aes_zip_without_right_password_keeps_plain_entry(
    corpus: Path, tmp_path: Path, passwords: tuple[str, ...], code: str
) -> None:
    artifact = extract(
        corpus / ZIP4J / "zip_with_different_passwords.zip", "zip", tmp_path, passwords
    )
    assert artifact.status == "processed"
    assert [c.name for c in artifact.children] == ["sample.pdf"]
    assert artifact.warnings == [code, code]
    assert artifact.metadata["refused"] == 2
    assert_no_secrets(artifact, "password_3")


def test_one_password_opens_only_its_entry(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(
        corpus / ZIP4J / "zip_with_different_passwords.zip", "zip", tmp_path, ("password_2",)
    )
    assert {c.name for c in artifact.children} == {"file_PDF_1MB.pdf", "sample.pdf"}
    assert artifact.warnings == ["wrong_password"]


@pytest.mark.parametrize(
    ("passwords", "code"),
    [(("test123!",), "corrupt_archive"), (("wrong",), "wrong_password"), ((), "password_required")],
)
def test_aes_entry_with_corrupt_mac_fails(
    corpus: Path, tmp_path: Path, passwords: tuple[str, ...], code: str
) -> None:
    artifact = extract(
        corpus / ZIP4J / "aes_with_extra_data_record_and_corrupt_mac.zip", "zip", tmp_path,
        passwords,
    )
    assert (artifact.status, artifact.reason) == ("failed", code)
    assert artifact.children == []
    assert_no_secrets(artifact, "test123!", "sample_text_large")
    # the partly decrypted entry was not left behind
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_crc_mismatch_fails_corrupt(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(corpus / ZIP4J / "entry_with_checksum_mismatch.zip", "zip", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_archive")
    assert "sample_text1" not in (artifact.detail or "")


@pytest.mark.parametrize(
    "name", ["invalid_zip_file_size_less_than_22kb.zip", "file_name_size_is_0_in_local_file_header"]
)
def test_invalid_zips_fail_corrupt(corpus: Path, tmp_path: Path, name: str) -> None:
    artifact = extract(corpus / ZIP4J / name, "zip", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_archive")


def test_corrupt_comment_length_still_reads_entry(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(corpus / ZIP4J / "zip_with_corrupt_comment_length.zip", "zip", tmp_path)
    assert artifact.status == "processed"
    assert [(c.name, c.size) for c in artifact.children] == [("sample_text1.txt", 449)]


def test_duplicate_entries_are_all_stored_with_warning(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(corpus / ZIP4J / "zip_with_duplicate_entries.zip", "zip", tmp_path)
    assert artifact.status == "processed"
    names = [c.name for c in artifact.children]
    assert names.count("sample_text1.txt") == 2
    assert len(names) == 4
    assert artifact.warnings == ["duplicate_entry"]


def test_gbk_name_without_utf8_flag_decodes(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(
        corpus / ZIP4J / "testfile_with_chinese_filename_by_7zip.zip", "zip", tmp_path
    )
    assert artifact.status == "processed"
    assert len(artifact.children) == 2
    assert "fff.txt" in {c.name for c in artifact.children}
    other = next(c for c in artifact.children if c.name != "fff.txt")
    assert other.name.startswith("fff - ") and other.name.endswith(".txt")
    assert other.size == 19


def test_pkware_strong_encryption_is_unsupported(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(corpus / ZIP4J / "strong_encrypted.zip", "zip", tmp_path, ("password",))
    assert (artifact.status, artifact.reason) == ("failed", "unsupported_encryption")


def test_empty_zip_is_processed_with_no_children(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(corpus / ZIP4J / "valid_empty_zip_file.zip", "zip", tmp_path)
    assert artifact.status == "processed"
    assert artifact.children == []
    assert artifact.metadata == {"entries": 0, "extracted": 0, "refused": 0, "encrypted": False}


@pytest.mark.parametrize(
    ("name", "kind"),
    [("zip-slip.zip", "zip"), ("zip-slip-win.zip", "zip"),
     ("zip-slip.tar", "tar"), ("zip-slip-win.tar", "tar")],
)
def test_zip_slip_entry_is_refused_and_nothing_escapes(
    corpus: Path, tmp_path: Path, name: str, kind: str
) -> None:
    escape_targets = [Path("/tmp/evil.txt"), Path("/Temp/evil.txt"), tmp_path.parent / "evil.txt"]
    before = {p: p.exists() for p in escape_targets}
    out = tmp_path / "artifacts"
    artifact = extract(corpus / ZIPSLIP / name, kind, out)
    assert artifact.status == "processed"
    assert [c.name for c in artifact.children] == ["good.txt"]
    assert blob_bytes(out, artifact, "good.txt").startswith(b"this is a good one")
    assert artifact.warnings == ["path_traversal"]
    assert artifact.metadata["refused"] == 1
    assert {p: p.exists() for p in escape_targets} == before
    # everything written lies in the content-addressed blob store, under the artifact dir
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [out / artifact.children[0].blob]
    assert not [p for p in tmp_path.rglob("*") if "evil" in p.name]
