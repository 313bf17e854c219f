"""A bounded, derandomized schemathesis run over the published OpenAPI document.

A real `chatapi serve` (PostgreSQL, the stricter database) is called with generated valid
(test_valid_requests.py) and invalid (test_invalid_requests.py) requests under three
identities: the master key, a user key and no key. Every response must be a non-5xx that the
document describes (status, content type, headers and schema), every error must be
problem+json, and invalid input must be refused. Two files, so the two runs can go to two
test workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import ADMIN_KEY, child_env, make_settings
from tests.support.api import bearer
from tests.support.processes import running_server

PROBLEM = "application/problem+json"
# Bounded: every operation x this many examples x 3 identities; 25 took ~140 s of the suite.
MAX_EXAMPLES = 15


@dataclass
class Identities:
    """The keys the run calls with; rotated or revoked keys are replaced as the run goes."""

    base: str
    master: str
    user_key: str
    user_id: str

    def headers(self, who: str) -> dict[str, str]:
        if who == "master":
            return bearer(self.master)
        if who == "user":
            return bearer(self.user_key)
        return {}

    def relogin(self) -> None:
        response = httpx.post(
            f"{self.base}/api/v1/auth/login",
            json={"user_id": self.user_id},
            headers=bearer(self.master),
        )
        response.raise_for_status()
        self.user_key = response.json()["api_key"]


@contextmanager
def running_identities(pg_url: str, workdir: Path) -> Iterator[Identities]:
    """A `chatapi serve` on `pg_url` with a tenant, its master key and a user's key."""
    env = child_env(make_settings(pg_url))
    with running_server(env, workdir, "fuzz") as base, httpx.Client(base_url=base) as http:
        tenant = http.post("/api/v1/clients", json={"name": "fuzz"}, headers=bearer(ADMIN_KEY))
        tenant.raise_for_status()
        master = tenant.json()["master_key"]
        user = http.post("/api/v1/users", json={"external_id": "fuzz"}, headers=bearer(master))
        user.raise_for_status()
        identities = Identities(base, master, "", user.json()["id"])
        identities.relogin()
        yield identities


@schemathesis.check
def errors_are_problem_json(ctx: Any, response: schemathesis.Response, case: Any) -> bool | None:
    """Every 4xx/5xx answer is an RFC 9457 problem document."""
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith(PROBLEM), f"{response.status_code} as {content_type}"
        body = response.json()
        assert body["status"] == response.status_code
    return None


# schemathesis's pytest plugin (`schema.parametrize()`) does not run on this pytest, so each
# operation gets a plain Hypothesis test from the operation's own strategy.
def check_every_operation(api_schema: Any, server: Identities, mode: GenerationMode) -> None:
    """Call every operation with generated `mode` cases as each identity; assert conformance."""
    failures: dict[str, str] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: report, do not dwell
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            for who in ("master", "user", "anonymous"):
                response = case.call_and_validate(
                    headers=server.headers(who),
                    additional_checks=[errors_are_problem_json],
                    excluded_checks=[positive_data_acceptance],
                )
                _follow_key_changes(server, case, who, response)

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to negate (no parameters, no body)
        except (Exception, FailureGroup) as exc:
            failures[operation.label] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"== {op}\n{err}" for op, err in failures.items())


def _follow_key_changes(server: Identities, case: Any, who: str, response: Any) -> None:
    """Keep the run's keys alive when a generated call rotated or revoked them."""
    path = case.operation.path
    if response.status_code == 200 and path == "/api/v1/clients/me/rotate-key":
        server.master = response.json()["master_key"]
    if response.status_code in (200, 204) and (
        path in ("/api/v1/auth/logout", "/api/v1/auth/login") or path.startswith("/api/v1/keys/")
    ):
        server.relogin()
