"""The sms channel's quota: SMS deliveries per client per hour (`rate_limits.sms_per_hour`,
RATE_LIMIT_SMS_PER_HOUR), a budget of its own beside the e-mail one."""

from __future__ import annotations

from functools import partial

from limits.aio.storage import MemoryStorage

from app.channels.base import DeliveryTarget
from app.channels.email import EmailChannel
from app.channels.sms import SmsChannel
from app.core.broadcast import MemoryBroadcast
from app.core.clock import ManualClock
from app.core.db import Database
from app.core.ids import new_id
from app.ratelimit.policies import ClientLimits, RateLimitPolicies
from tests.conftest import make_settings


async def test_the_sms_quota_is_per_client_per_hour_and_apart_from_e_mail(
    clock: ManualClock,
) -> None:
    settings = make_settings("sqlite+aiosqlite:///:memory:", RATE_LIMIT_SMS_PER_HOUR=50)
    assert ClientLimits.defaults(settings).sms_per_hour == 50
    db = Database(settings.DATABASE_URL)
    policies = RateLimitPolicies(settings, MemoryStorage(), db, MemoryBroadcast())
    stored = {"rate_limits": {"sms_per_hour": 2, "emails_per_hour": 1}}
    policies._cache["c1"] = (ClientLimits.from_stored(settings, stored), float("inf"))
    sms = partial(SmsChannel(provider_types={}).quota, DeliveryTarget(new_id(), "c1"))
    email = partial(EmailChannel().quota, DeliveryTarget(new_id(), "c1"))
    try:
        verdicts = [await policies.hit_channel("c1", sms) for _ in range(3)]
        assert [v.allowed for v in verdicts if v] == [True, True, False]
        # The e-mail budget is untouched by SMS (and SMS by e-mail).
        mail = await policies.hit_channel("c1", email)
        assert mail is not None and mail.allowed
        refused = verdicts[2]
        assert refused is not None and refused.reset_at % 3600 == 0
        clock.advance(refused.reset_in())
        reopened = await policies.hit_channel("c1", sms)
        assert reopened is not None and reopened.allowed
    finally:
        await db.dispose()
