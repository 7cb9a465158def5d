"""A real SMTP server on loopback (aiosmtpd) for tests, recording what it accepts."""

from __future__ import annotations

import email
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller


class RecordingHandler:
    """Accepts every message and keeps it (recipients, parsed message)."""

    def __init__(self):
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_env(port: int) -> dict[str, str]:
    return {
        "REPORTGEN_SMTP_HOST": "127.0.0.1",
        "REPORTGEN_SMTP_PORT": str(port),
        "REPORTGEN_SMTP_SECURITY": "none",
        "REPORTGEN_MAIL_FROM": "briefings@example.test",
    }


@pytest.fixture
def recording_smtp():
    handler = RecordingHandler()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    yield handler, port
    ctl.stop()
