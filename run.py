"""The seed's command line: ``python run.py SOURCE_DIR ARTIFACT_DIR [options]``.

Same behaviour as ``chrono run``; the seed's underscore flags (``--overwrite_existing``,
``--skip_event_generation``, ``--password_file``) are accepted too.
"""

import sys

from chrono.cli.main import app


def _dashed(arg: str) -> str:
    """``--password_file=a_b.txt`` -> ``--password-file=a_b.txt``: only the flag's name changes."""
    if not arg.startswith("--"):
        return arg
    name, sep, value = arg.partition("=")
    return name.replace("_", "-") + sep + value


if __name__ == "__main__":
    args = [_dashed(a) for a in sys.argv[1:]]
    sys.exit(app(["run", *args]))
