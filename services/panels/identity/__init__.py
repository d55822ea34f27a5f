"""Identity: built-in users and sessions, API keys, the audit list and the members list."""
