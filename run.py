"""The seed's command line: ``python run.py SOURCE_DIR ARTIFACT_DIR [options]``.

Same behaviour as ``chrono run``; the seed's underscore flags (``--overwrite_existing``,
``--skip_event_generation``, ``--password_file``) are accepted too.
"""

import sys

from chrono.cli.main import app

if __name__ == "__main__":
    args = [a.replace("_", "-") if a.startswith("--") else a for a in sys.argv[1:]]
    sys.exit(app(["run", *args]))
