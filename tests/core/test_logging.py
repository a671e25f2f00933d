import json
import logging

import pytest

from chrono.core.errors import FileRejected, bounded
from chrono.core.logging import configure_logging, log_event


def test_only_allowed_fields_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    log_event("file_extracted", file_id="abc", pages=3, sender="jane@example.com",
              subject="Secret merger", reason_code="wrong password for jane@example.com")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    payload = json.loads(line.split(" ", 3)[-1])
    assert payload["file_id"] == "abc" and payload["pages"] == 3
    assert "sender" not in payload and "subject" not in payload
    assert payload["reason_code"] == "<redacted>"
    assert payload["dropped_fields_count"] == 2
    assert "jane" not in line and "merger" not in line
    logging.getLogger("chrono").handlers.clear()


def test_error_details_are_bounded() -> None:
    err = FileRejected("corrupt_pdf", "x" * 5000)
    assert len(err.detail) <= 200
    assert str(err).startswith("corrupt_pdf")
    assert bounded("a  b\n c") == "a b c"
