"""Generated invalid requests: refused with a documented 4xx problem+json, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from schemathesis import GenerationMode

from tests.fuzz.contract import Identities, check_every_operation

pytestmark = pytest.mark.slow


def test_invalid_requests_are_refused_as_documented(api_schema: Any, server: Identities) -> None:
    check_every_operation(api_schema, server, GenerationMode.NEGATIVE)
