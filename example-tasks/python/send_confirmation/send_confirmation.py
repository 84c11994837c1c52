"""Sends the customer an order confirmation (to an outbox; no network).

The Python twin of example-tasks/send_confirmation: the same input and
output, so either can be the order workflow's `send_confirmation` step.
"""

from dataclasses import dataclass

import weft_sdk
from weft_sdk import TaskError, log


@dataclass
class Request:
    order_id: str
    email: str
    amount_cents: int
    currency: str


@dataclass
class Sent:
    message_id: str
    to: str
    subject: str


def is_email(address: str) -> bool:
    user, at, domain = address.partition("@")
    return bool(at) and bool(user) and "." in domain and not domain.endswith(".")


@weft_sdk.task
def send_confirmation(request: Request) -> Sent:
    if request.amount_cents < 0:
        raise TaskError("invalid_input", "amount_cents must not be negative")
    if not is_email(request.email):
        raise TaskError("invalid_email", f"{request.email!r} is not an email address")
    subject = (
        f"Your order {request.order_id} "
        f"({request.amount_cents // 100}.{request.amount_cents % 100:02} {request.currency}) is confirmed"
    )
    log.info(f"confirmation for order {request.order_id} sent to {request.email}")
    return Sent(message_id=f"msg_{request.order_id}", to=request.email, subject=subject)
