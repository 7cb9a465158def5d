"""reportgen: peer-comparison briefings from published financial statements."""

__version__ = "0.1.0"
