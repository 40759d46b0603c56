"""RQ worker for the gateway's queues: ``python worker.py [QUEUE ...]``.

Imports the job code before forking (RQ's performance advice), so each job
starts without re-importing SQLAlchemy, Twilio and the parser.
"""

import sys

import sms_gateway.jobs  # noqa: F401 - preload job code before forking
from sms_gateway.cli import run_worker

if __name__ == "__main__":
    sys.exit(run_worker(sys.argv[1:]))
