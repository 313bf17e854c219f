"""The Celery app Flower inspects: ChatAPI's broker keys carry REDIS_KEY_PREFIX."""

import os

from celery import Celery

prefix = os.environ.get("REDIS_KEY_PREFIX", "chatapi:") + "celery:"
app = Celery(broker=os.environ.get("REDIS_URL", "redis://redis:6379/0"))
app.conf.broker_transport_options = {"global_keyprefix": prefix}
