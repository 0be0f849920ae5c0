"""Kept so models logged before the pyfunc module was renamed to ``udfs.pyfunc`` still load:
their MLmodel file names ``loader_module: udfs.user_tower``. New models name ``udfs.pyfunc``."""

from udfs.pyfunc import _load_pyfunc

__all__ = ["_load_pyfunc"]
