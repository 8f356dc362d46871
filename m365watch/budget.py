"""How long m365watch waits for the network, stated once: pure constants.

The README's "Time limits" section says the same in words; the cron line, the
systemd unit (``--lock-wait``, ``TimeoutStartSec=``) and ``watch`` are checked
against these numbers by the tests.
"""

from __future__ import annotations

# One HTTP exchange with Entra ID or Graph, connecting to the last byte of the answer.
EXCHANGE_SECONDS = 30.0
# What one poll may spend at Microsoft: sign-in and every Graph page, retries and backoff
# included. Running out fails the poll like any Graph failure (exit 1, state untouched).
FETCH_SECONDS = 90.0
# One message to one notification URL; past it the message stays owed and is retried.
SEND_SECONDS = 30.0
# The largest Graph answer read (one page of 1000 issues is a few MB); a larger one is refused.
GRAPH_MAX_BYTES = 64 * 1024 * 1024
# The largest post-incident report downloaded (Microsoft's are PDF or Word files of a few
# hundred KB); a larger one is refused unread.
REPORT_MAX_BYTES = 20 * 1024 * 1024
# The largest sign-in answer read (a discovery document or a token is a few KB).
SIGN_IN_MAX_BYTES = 1024 * 1024
# The --lock-wait the README and the systemd unit use: another poll that met the slowest
# Graph (FETCH_SECONDS) and one hanging target (SEND_SECONDS) has finished by then.
SUGGESTED_LOCK_WAIT = FETCH_SECONDS + SEND_SECONDS
