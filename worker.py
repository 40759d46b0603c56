"""RQ worker for the gateway's queues: ``python worker.py [QUEUE ...]``.

Imports the job code up front (RQ's performance advice), so no job pays for
importing SQLAlchemy, Twilio and the parser. Same as ``sms-gateway worker``.
"""

import sys

import sms_gateway.jobs  # noqa: F401 - preload the job code
from sms_gateway.cli import main

if __name__ == "__main__":
    main(["worker", *(f"--queue={name}" for name in sys.argv[1:])])
