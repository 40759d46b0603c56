"""``python -m sms_gateway`` is the ``sms-gateway`` command."""

from .cli import main

main()
