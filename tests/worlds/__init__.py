"""Test worlds: builders per capability that drive the real services and return what they made."""
