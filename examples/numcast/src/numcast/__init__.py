"""numcast: turn measurements into integers."""

__version__ = "0.1.0"
