"""The browser demo (its files in static/, see README.md) served at /demo when DEMO_ENABLED
is set."""
