"""Each fuzz file gets its own server, so the two runs can go to two test workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from tests.fuzz.contract import Identities, running_identities


@pytest.fixture(scope="module")
def server(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identities]:
    with running_identities(pg_url, tmp_path_factory.mktemp("fuzz")) as identities:
        yield identities


@pytest.fixture(scope="module")
def api_schema(server: Identities) -> Any:
    return schemathesis.openapi.from_url(f"{server.base}/api/v1/openapi.json")
