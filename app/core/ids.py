"""Opaque, sortable identifiers."""

import base64
import secrets

from ulid import ULID

# RFC 4648 base32 to Crockford's (the ULID alphabet): same 5-bit groups, other digits.
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
# A batch's first random value stays this far under 2**80, so adding its size never carries
# into the timestamp.
_RANDOM_BITS = 79


def new_id() -> str:
    """A new ULID as a 26-character string: unique, and sortable by creation time."""
    return str(ULID())


def new_ids(count: int) -> list[str]:
    """`count` new ULIDs of one millisecond, increasing in order (as `new_id` called in a
    loop gives them), made at once: a fan-out's ids cost one encoding, not one each."""
    if count <= 0:
        return []
    prefix = new_id()[:10]  # the 48-bit timestamp
    first = secrets.randbits(_RANDOM_BITS)
    raw = b"".join((first + i).to_bytes(10, "big") for i in range(count))
    # 10 bytes are exactly 16 base32 digits: no padding, one digit string for all.
    digits = base64.b32encode(raw).translate(_CROCKFORD).decode("ascii")
    return [prefix + digits[i : i + 16] for i in range(0, 16 * count, 16)]
