"""Deployment helpers: node inventory, tunnel plans."""
