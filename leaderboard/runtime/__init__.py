"""Shared runtime every service imports: config, server bootstrap, errors, auth, stores."""
