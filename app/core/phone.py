"""Phone numbers in E.164 (`+14155550100`): users' `phone`, a send's `phone` recipients and
an SMS provider's sender.

Only the canonical form is accepted — a `+`, the country calling code and the number, digits
only — so what is stored is what an SMS provider is given, and one number has one spelling
(a user's phone and a `phone` recipient compare as strings). Google's `phonenumbers` checks
that the country calling code exists and the length is one that country's numbers can have
("possible"); we do not ask for "valid" (an assigned range): its ranges lag the numbering
plans, and a number refused here could not be saved at all, while one the provider refuses
only fails its delivery, with the provider's reason.
"""

from __future__ import annotations

import re
from typing import Annotated

import phonenumbers
from pydantic import AfterValidator, Field

# ITU-T E.164: at most 15 digits, the country code never starting with 0.
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
MAX_E164_LENGTH = 16


def e164(value: str) -> str:
    """`value` when it is a possible phone number in canonical E.164, else ValueError."""
    if not _E164.match(value):
        raise ValueError(
            "must be a phone number in E.164 form: '+', the country code and the number, "
            "digits only (e.g. +14155550100)"
        )
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number: unknown country calling code") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError("is not a possible phone number for its country calling code")
    return value


#: A phone number field: canonical E.164, checked by `e164`.
E164 = Annotated[
    str,
    Field(
        min_length=3,
        max_length=MAX_E164_LENGTH,
        examples=["+14155550100"],
        # Documented in the schema; checked (with its own message) by `e164`.
        json_schema_extra={"pattern": _E164.pattern},
    ),
    AfterValidator(e164),
]
