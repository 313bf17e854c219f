"""Generated valid requests: no 5xx, every answer as documented, errors as problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from schemathesis import GenerationMode

from tests.fuzz.contract import Identities, check_every_operation

pytestmark = pytest.mark.slow


def test_valid_requests_get_documented_answers(api_schema: Any, server: Identities) -> None:
    check_every_operation(api_schema, server, GenerationMode.POSITIVE)
