"""Dress rehearsal of a profile on stand-in models and data."""
