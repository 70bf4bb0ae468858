"""A service call from a thread other than the executor's, with a deadline, sent
again while unanswered when it may be."""

from __future__ import annotations

import threading
import time
from typing import Any, Final

#: an idempotent request not answered after this long is sent again
RESEND_S: Final = 2.0


def call_service(
    client: Any, request: Any, timeout_s: float, *, idempotent: bool = False
) -> Any | None:
    """The first answered future of ``request`` within ``timeout_s``, or None;
    the caller's executor spins the client's node in another thread.

    On a loaded machine a server can answer a client whose response reader it
    has not matched yet, and that answer is lost (Fast DDS waits only briefly
    for the match). An ``idempotent`` request (a query, setting the same value)
    is therefore sent again every :data:`RESEND_S` until one is answered;
    anything else (a lifecycle transition, a write) is sent once. Requests left
    unanswered are forgotten by the client.
    """
    done = threading.Event()
    sent: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while not done.is_set():
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            break
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        sent.append(future)
        done.wait(min(left_s, RESEND_S) if idempotent else left_s)
        if not idempotent:
            break
    answered = next((f for f in sent if f.done()), None)
    for future in sent:
        if not future.done():
            client.remove_pending_request(future)
    return answered
