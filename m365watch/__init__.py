"""m365watch: Microsoft 365 service-health watcher."""

__version__ = "0.1.0"
