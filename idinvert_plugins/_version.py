"""The package version, in a module of its own so that any module can read it without importing the package's
public facade (``idinvert_plugins/__init__.py`` imports most of the package)."""

__version__ = "0.1.0"
