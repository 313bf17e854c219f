"""Providers: the delivery services behind the email, sms and push channels (docs/providers.md)."""
