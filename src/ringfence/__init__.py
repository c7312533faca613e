"""Ringfence: direct messages and 1:1 calls that never reveal where you are."""

__version__ = "0.1.0"
