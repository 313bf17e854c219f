"""How the `webpush` and `fcm` types read their services' answers and check their settings
(pure functions: the end-to-end tests cover the wire)."""

from __future__ import annotations

import base64

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from app.channels.base import OutcomeKind
from app.providers.builtin import fcm, webpush


def test_webpush_answers() -> None:
    ok = webpush.classify(201, None, "", "https://push.example/m/1")
    assert ok.outcome.kind is OutcomeKind.DELIVERED and ok.provider_message_id.endswith("/m/1")
    for status in (404, 410):
        gone = webpush.classify(status, None, "")
        assert gone.gone and gone.outcome.kind is OutcomeKind.FAILED
    limited = webpush.classify(429, "30", "")
    assert limited.outcome.kind is OutcomeKind.RETRY and limited.outcome.retry_after == 30
    assert not limited.fail_over  # the service is fine, only busy
    down = webpush.classify(503, None, "")
    assert down.outcome.kind is OutcomeKind.RETRY and down.fail_over and not down.gone
    for status in (400, 413):
        bad = webpush.classify(status, None, "")
        assert bad.outcome.kind is OutcomeKind.FAILED and not bad.gone and not bad.fail_over
    refused = webpush.classify(403, None, "")
    assert refused.outcome.kind is OutcomeKind.FAILED and refused.fail_over


def test_webpush_settings_take_pem_or_raw_keys_and_check_the_subject() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    raw_b64 = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    settings = webpush.WebPushSettings(
        vapid_private_key=raw_b64, vapid_subject="mailto:ops@shop.example"
    )
    vapid = webpush.load_vapid(settings.vapid_private_key.get_secret_value())
    assert vapid.private_key.private_numbers().private_value == key.private_numbers().private_value
    assert webpush.WebPushSettings.secret_field_names() == ("vapid_private_key",)
    for bad in (
        {"vapid_private_key": "not a key", "vapid_subject": "mailto:ops@shop.example"},
        {"vapid_private_key": raw_b64, "vapid_subject": "ops@shop.example"},
        {"vapid_private_key": raw_b64, "vapid_subject": "http://shop.example"},
        {"vapid_private_key": raw_b64, "vapid_subject": "mailto:a@b.c", "ttl": -1},
    ):
        with pytest.raises(ValidationError):
            webpush.WebPushSettings.model_validate(bad)


def _fcm_error(status: str, code: str | None, token_field: bool = False) -> str:
    details: list[dict[str, object]] = []
    if code:
        details.append({"errorCode": code})
    if token_field:
        details.append({"fieldViolations": [{"field": "message.token"}]})
    return orjson.dumps({"error": {"status": status, "details": details}}).decode()


def test_fcm_answers() -> None:
    ok = fcm.classify(200, None, '{"name": "projects/p/messages/1"}')
    assert (
        ok.outcome.kind is OutcomeKind.DELIVERED
        and ok.provider_message_id == "projects/p/messages/1"
    )
    assert fcm.classify(404, None, _fcm_error("NOT_FOUND", "UNREGISTERED")).gone
    assert fcm.classify(400, None, _fcm_error("INVALID_ARGUMENT", "INVALID_ARGUMENT", True)).gone
    # An invalid argument that is not the token (a bad data key) fails without removing it.
    other = fcm.classify(400, None, _fcm_error("INVALID_ARGUMENT", "INVALID_ARGUMENT"))
    assert not other.gone and other.outcome.kind is OutcomeKind.FAILED and not other.fail_over
    busy = fcm.classify(429, "7", _fcm_error("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"))
    assert busy.outcome.kind is OutcomeKind.RETRY and busy.outcome.retry_after == 7
    down = fcm.classify(500, None, "")
    assert down.outcome.kind is OutcomeKind.RETRY and down.fail_over
    mismatch = fcm.classify(403, None, _fcm_error("PERMISSION_DENIED", "SENDER_ID_MISMATCH"))
    assert mismatch.fail_over and not mismatch.gone


def test_fcm_settings_need_a_service_account_with_an_rsa_key() -> None:
    with pytest.raises(ValidationError):
        fcm.FcmSettings.model_validate({"project_id": "chatapi-test", "service_account_json": "{}"})
    with pytest.raises(ValidationError):
        fcm.FcmSettings.model_validate(
            {"project_id": "Not A Project", "service_account_json": "{}"}
        )
    assert fcm.FcmSettings.secret_field_names() == ("service_account_json",)
