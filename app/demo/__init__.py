"""The browser demo (examples/browser-chat) served at /demo when DEMO_ENABLED is set."""
