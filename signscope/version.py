"""signscope's version, in a module of its own: modules that record it (run.json, figures)
read it here, not from the package, whose ``__init__`` loads the API that imports them."""

__version__ = "0.1.0"
