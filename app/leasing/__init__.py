"""One leased-work engine: the claim, lease, fence, retry and sweep rules shared by every
table that is a work queue (deliveries, inbound events)."""
