"""The generic-PTR heuristic on names seen in the wild."""

from __future__ import annotations

import pytest

from mailcheck.checks.generic_ptr import generic_reason


@pytest.mark.parametrize(
    ("ip", "name", "why"),
    [
        ("67.171.0.90", "c-67-171-0-90.hsd1.wa.comcast.net", "IP address"),
        ("1.2.3.4", "ec2-1-2-3-4.compute-1.amazonaws.com.", "cloud"),
        ("1.2.3.4", "static.4.3.2.1.clients.your-server.de", "cloud"),
        ("1.2.3.4", "4.3.2.1.in-addr.example.net", "IP address"),
        ("192.0.2.7", "host192000002007.example.net", "IP address"),
        ("192.0.2.7", "c0000207.example.net", "IP address"),
        ("192.0.2.77", "pool-77.dsl.example.net", "'dsl'"),
        ("192.0.2.77", "dynamic77.example.net", "'dynamic'"),
        ("2001:db8::1:2:3:4", "2001-db8--1-2-3-4.v6.example.net", "IP address"),
        ("2001:db8:1::1a2b:3c4d:5e6f:7081", "1a2b3c4d5e6f7081.example.net", "IP address"),
    ],
)
def test_generic_names(ip: str, name: str, why: str) -> None:
    reason = generic_reason(ip, name)
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    ("ip", "name"),
    [
        ("192.0.2.10", "mx1.good.test"),
        ("203.0.113.25", "mail.example.com"),
        ("203.0.113.25", "smtp-out-2.mailer.example.com"),
        ("203.0.113.25", "mail.dsl.com"),  # the registered domain may say anything
        ("2001:db8::25", "mx.example.net"),
    ],
)
def test_chosen_names(ip: str, name: str) -> None:
    assert generic_reason(ip, name) is None
