"""The built-in provider types, registered as `chatapi.providers` entry points like plug-ins."""
