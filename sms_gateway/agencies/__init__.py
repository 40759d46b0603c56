"""The agencies' side of 1708: API, report lifecycle, citizen follow-up, deadlines watch, webhooks, Open311.

- ``tokens``: API tokens (stored hashed, revocable), per agency or central admin.
- ``scope``: who may see what (an agency and its units; coordinators' watch lists).
- ``lifecycle``: statuses, allowed transitions, disposition, answers, citizen SMS.
- ``citizen``: ``BALAS <nomor> <teks>`` and the auto-close of unanswered follow-ups.
- ``escalation``: the periodic deadline watch (level 1 intervention, level 2 reprimand).
- ``push``: signed webhook deliveries with retries, a log and replay.
- ``monitoring``: per-agency counts and medians for coordinators.
- ``api`` / ``open311``: the Flask blueprints; ``web.init_app`` registers them.
"""
