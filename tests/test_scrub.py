from collections import Counter

import pytest

from training.data.scrub import scrub


@pytest.mark.parametrize(
    "text, expected, kind",
    [
        ("write to sam.r+chat@example.co.uk pls", "write to <email> pls", "email"),
        ("https://maps.app/x?y=1 and www.foo.org", "<url> and <url>", "url"),
        ("card 4111 1111 1111 1111 ok", "card <card number> ok", "card"),
        ("ssn 123-45-6789", "ssn <id number>", "ssn"),
        ("server 192.168.1.20 down", "server <ip address> down", "ip"),
        ("v6 fe80::1ff:fe23:4567:890a", "v6 <ip address>", "ip"),
        ("iban DE89 3704 0044 0532 0130 00", "iban <iban>", "iban"),
        ("call +44 20 7946 0958 or 503.555.0142", "call <phone number> or <phone number>", "phone"),
    ],
)
def test_each_kind_is_replaced_and_counted(text, expected, kind):
    counts = Counter()
    assert scrub(text, counts) == expected
    assert counts[kind] == expected.count("<")


@pytest.mark.parametrize(
    "text",
    [
        "meet at 5:30 or 12:30:45",
        "it costs 1200 bucks",
        "on 2025-03-04 or 3/4/2025",
        "4111 1111 1111 1112 is not a valid card",
        "version 1.2.3 and 999.1.1.1",
        "lol 😭 no numbers here",
    ],
)
def test_ordinary_chat_text_is_left_alone(text):
    counts = Counter()
    assert scrub(text, counts) == text
    assert not counts
