"""The honeypot sensor: SIP listeners, a sans-I/O responder that answers like a PBX, safety."""
