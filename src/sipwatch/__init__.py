"""sipwatch: find and explain attacks on SIP/VoIP infrastructure."""

__version__ = "0.1.0"
