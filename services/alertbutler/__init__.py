"""alertbutler: event-driven alert production and prompt processing around a data butler."""

__version__ = "0.1.0"
