"""Peers: other ways of logging asyncio task switches, measured beside coroscope."""
