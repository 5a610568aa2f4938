"""archspec: a framework-agnostic architecture spec compiler."""

__version__ = "0.1.0"
