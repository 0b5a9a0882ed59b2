"""Reading untrusted files and writing atomically: the one layer every file read in gandistill goes through.

* :mod:`gandistill.io.errors` -- the error family (:class:`GandistillError`) and one-line messages;
* :mod:`gandistill.io.safe_pickle` -- regular-file checks with a size cap and the whitelisting pickle
  interpreter used for NVlabs snapshots and CIFAR batches;
* :mod:`gandistill.io.jsonable` -- configs to JSON-ready values.
"""
from gandistill.io.errors import ConfigError, GandistillError, UnsafeFileError, one_line, show_path

__all__ = ["ConfigError", "GandistillError", "UnsafeFileError", "one_line", "show_path"]
