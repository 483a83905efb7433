"""callbridge: self-hosted CTI middleware."""

__version__ = "0.1.0"
