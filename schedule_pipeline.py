"""The seed's scheduler command line: ``python schedule_pipeline.py --mode aws|dask|local ...``.

Same behaviour as ``chrono schedule``; the seed's underscore flags (``--source_bucket``,
``--minimum_batch_size``...) are accepted, ``--execute_step_functions`` means ``--execute``, and
``--prefix A B`` / ``--steps A B`` may list several values after one flag.
"""

import sys

from chrono.cli.main import app
from chrono.cli.schedule import seed_args

if __name__ == "__main__":
    sys.exit(app(["schedule", *seed_args(sys.argv[1:])]))
