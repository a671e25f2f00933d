"""Email extractor against real third-party mail (mail-parser and hunnysoft MIME samples)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path

import pytest

from chrono.core.config import EvidenceConfig
from chrono.evidence.extract.base import ExtractContext, SourceFile, run_extractor
from chrono.evidence.model import Artifact


def extract(path: Path, out: Path) -> Artifact:
    data = path.read_bytes()
    source = SourceFile(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind="eml",
        name=path.name,
    )
    return run_extractor(source, ExtractContext(config=EvidenceConfig(), artifact_dir=out))


def blob(out: Path, artifact: Artifact, name: str) -> bytes:
    child = next(c for c in artifact.children if c.name == name)
    return (out / child.blob).read_bytes()


def expected_attachment_counts(php: str) -> dict[str, int]:
    """``'attachments' => N`` of every ``runEmailTest`` in EmailFunctionalTest.php."""
    counts = {}
    for match in re.finditer(r"runEmailTest\('([\w-]+)', \[(.*?)\n        \]\);", php, re.S):
        found = re.search(r"'attachments' => (\d+)", match.group(2))
        if found:
            counts[match.group(1)] = int(found.group(1))
    return counts


def test_mail_test_2_ground_truth(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(corpus / "email_mailparser" / "mail_test_2.eml", tmp_path)
    assert artifact.status == "processed"
    (record,) = artifact.records
    assert record.message_id == "<4516257BC5774408ADC1263EEBBBB73F@ad.regione.vda.it>"
    senders = [p.value for p in record.participants if p.role == "from"]
    recipients = [p.value for p in record.participants if p.role == "to"]
    assert senders == ["meteo@regione.vda.it"]
    assert len(recipients) == 2 and recipients[0] == "echo@tu-berlin.de"
    # mail-parser's ground truth is the UTC instant; we keep the header's own offset (+01:00).
    assert record.start == "2015-11-29T09:45:18+01:00"
    assert record.start is not None
    assert datetime.fromisoformat(record.start) == datetime.fromisoformat(
        "2015-11-29T08:45:18+00:00"
    )
    assert len(record.attachments) == 3 and len(artifact.children) == 3


def test_every_mailparser_eml_parses(corpus: Path, tmp_path: Path) -> None:
    files = sorted((corpus / "email_mailparser").glob("*.eml"))
    assert len(files) >= 13
    for i, path in enumerate(files):
        artifact = extract(path, tmp_path / str(i))
        assert artifact.status == "processed", (path.name, artifact.reason, artifact.detail)
        assert len(artifact.records) == 1
        artifact.model_dump_json()


def test_every_hunnysoft_message_parses(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / "email_hunnysoft_mime"
    files = sorted(p for p in folder.glob("*.txt"))
    assert len(files) >= 70
    for i, path in enumerate(files):
        artifact = extract(path, tmp_path / str(i))
        assert artifact.status in ("processed", "failed"), path.name
        if artifact.status == "failed":
            assert artifact.reason, path.name
        else:
            assert artifact.records[0].participants, path.name
        artifact.model_dump_json()


def test_hunnysoft_attachment_counts_match_reference(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / "email_hunnysoft_mime"
    counts = expected_attachment_counts((folder / "EmailFunctionalTest.php").read_text())
    assert len(counts) >= 40
    mismatches = {}
    for key, expected in counts.items():
        path = folder / f"{key}.txt"
        if not path.exists():  # the PHP suite names a few messages the corpus does not ship
            continue
        artifact = extract(path, tmp_path / key)
        if len(artifact.records[0].attachments) != expected:
            mismatches[key] = (expected, len(artifact.records[0].attachments))
    assert mismatches == {}


@pytest.mark.parametrize(
    ("key", "from_", "to", "subject"),
    [
        ("m0001", ("doug@example.com", "Doug Sauder"),
         ("schmuergen@example.com", "Jürgen Schmürgen"),
         "Die Hasen und die Frösche (Microsoft Outlook 00)"),
        ("m1005", ("dwsauder@example.com", "Doug Sauder"),
         ("mueller@example.com", "Heinz Müller"),
         "Die Hasen und die Frösche (Netscape Messenger 4.7)"),
        ("m2015", ("dwsauder@example.com", "Doug Sauder"),
         ("mueller@example.com", "Heinz Müller"), "Die Hasen und die Frösche"),
        ("m3004", ("doug@penguin.example.com", "Doug Sauder"),
         ("blow@example.com", "Joe Blow"), "Die Hasen und die Frösche"),
        ("m4006", ("sender@email.test", "Test Sender"),
         ("recipient@email.test", "Test Recipient"), "Read: invitation"),
    ],
)
def test_hunnysoft_headers(
    corpus: Path, tmp_path: Path, key: str, from_: tuple[str, str], to: tuple[str, str],
    subject: str,
) -> None:
    artifact = extract(corpus / "email_hunnysoft_mime" / f"{key}.txt", tmp_path)
    (record,) = artifact.records
    first = {
        role: next(p for p in record.participants if p.role == role) for role in ("from", "to")
    }
    assert (first["from"].value, first["from"].name) == from_
    assert (first["to"].value, first["to"].name) == to
    assert record.subject == subject


@pytest.mark.parametrize(
    ("key", "names"),
    [
        ("m0011", ["blueball.png", "greenball.png", "redball.png"]),  # base64 images
        ("m0018", ["blueball.png", "greenball.png", "redball.png"]),  # uuencoded in the body
        ("m2004", ["blueball.png", "redball.png"]),  # Eudora
        ("m3001", ["redball.png", "blueball.png"]),  # PINE
        ("m4006", ["winmail.dat"]),  # TNEF kept whole as a child
    ],
)
def test_hunnysoft_attachment_bytes_equal_originals(
    corpus: Path, tmp_path: Path, key: str, names: list[str]
) -> None:
    folder = corpus / "email_hunnysoft_mime"
    artifact = extract(folder / f"{key}.txt", tmp_path)
    assert [c.name for c in artifact.children] == names
    for name in names:
        assert blob(tmp_path, artifact, name) == (folder / "files" / name).read_bytes(), name


def test_hunnysoft_text_attachment_and_body(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / "email_hunnysoft_mime"
    artifact = extract(folder / "m3006.txt", tmp_path)
    assert blob(tmp_path, artifact, "abc.txt").replace(b"\r\n", b"\n") == (
        folder / "files" / "abc.txt"
    ).read_bytes().replace(b"\r\n", b"\n")
    body = extract(folder / "m0001.txt", tmp_path / "b").records[0].body or ""
    reference = (folder / "files" / "HasenundFrosche.txt").read_bytes().decode("latin-1")
    assert " ".join(body.split()) == " ".join(reference.split())
