"""AuthService."""
