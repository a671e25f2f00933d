"""Deterministic archive writers: zip (plain and AES-256), nested zip, 7z and tar.gz.

Archive formats store timestamps, and AES zip needs a random salt; both are pinned here (fixed
2025 timestamps, a salt derived from the archive's name) so the same plan gives the same bytes.
The salt is not a secret worth protecting: this is synthetic test data.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import zipfile
from datetime import UTC, datetime
from typing import IO, Any

import py7zr
import pyzipper
from Cryptodome.Cipher import AES
from Cryptodome.Hash import HMAC, SHA1
from Cryptodome.Protocol.KDF import PBKDF2
from Cryptodome.Util import Counter
from py7zr.helpers import ArchiveTimestamp
from py7zr.py7zr import FileInfoDict
from pyzipper.zipfile_aes import AESZipEncrypter

FIXED_TIME = datetime(2025, 12, 31, 12, 0, 0, tzinfo=UTC)
ZIP_TIME = (2025, 12, 31, 12, 0, 0)

Entries = list[tuple[str, bytes]]


def _zipinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3
    return info


def zip_bytes(entries: Entries) -> bytes:
    """A plain zip; entry names are written exactly as given (hostile names included)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(_zipinfo(name), data)
    return buf.getvalue()


def normalize_zip(data: bytes, rewrite: dict[str, Any] | None = None) -> bytes:
    """Re-pack a zip (an xlsx from openpyxl) with fixed timestamps and a fixed
    ``dcterms:modified``; ``rewrite`` maps entry names to replacement bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if rewrite and info.filename in rewrite:
                body = rewrite[info.filename]
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*",
                              rb"\g<1>2025-12-31T12:00:00Z", body)
            dst.writestr(_zipinfo(info.filename), body)
    return out.getvalue()


class _SeededAESEncrypter(AESZipEncrypter):
    """WinZip AE-2 encrypter with a caller-given salt instead of OS randomness."""

    def __init__(self, pwd: bytes, salt: bytes) -> None:
        super().__init__(pwd=pwd, nbits=256)
        # Same key derivation as AESZipEncrypter.__init__, redone with the fixed salt.
        self.salt = salt[: self.salt_length]
        # latin-1 maps str back to exactly these bytes inside PBKDF2.
        keymaterial = PBKDF2(pwd.decode("latin-1"), self.salt, count=1000, dkLen=2 * 32 + 2)
        self.encpwdverify = keymaterial[64:]
        self.encrypter = AES.new(keymaterial[:32], AES.MODE_CTR,
                                 counter=Counter.new(nbits=128, little_endian=True))
        self.hmac = HMAC.new(keymaterial[32:64], digestmod=SHA1)


class _SeededAESZipFile(pyzipper.AESZipFile):
    salt_source: bytes = b""
    entry_count = 0

    def get_encrypter(self) -> _SeededAESEncrypter:
        self.entry_count += 1
        salt = hashlib.sha256(self.salt_source + str(self.entry_count).encode()).digest()
        return _SeededAESEncrypter(self.pwd, salt)


def aes_zip_bytes(entries: Entries, password: str, salt_source: str) -> bytes:
    """An AES-256 (WinZip AE-2) encrypted zip readable with ``password``."""
    buf = io.BytesIO()
    with _SeededAESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                           encryption=pyzipper.WZ_AES) as zf:
        zf.salt_source = salt_source.encode()
        zf.setpassword(password.encode())
        for name, data in entries:
            info = pyzipper.zipfile_aes.AESZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = pyzipper.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


class _FixedTime7z(py7zr.SevenZipFile):
    @staticmethod
    def _make_file_info_from_name(bio: IO[Any], size: int, arcname: str) -> FileInfoDict:
        info = py7zr.SevenZipFile._make_file_info_from_name(bio, size, arcname)
        stamp = ArchiveTimestamp.from_datetime(FIXED_TIME.timestamp())
        for key in ("creationtime", "lastwritetime", "lastaccesstime"):
            info[key] = stamp
        return info


def sevenzip_bytes(entries: Entries) -> bytes:
    buf = io.BytesIO()
    with _FixedTime7z(buf, "w") as archive:
        for name, data in entries:
            archive.writestr(data, name)
    return buf.getvalue()


def tgz_bytes(entries: Entries) -> bytes:
    """A gzip-compressed ustar tar with fixed owner, mode and times."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(FIXED_TIME.timestamp())
            info.mode = 0o644
            info.uname = info.gname = "chrono"
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()
