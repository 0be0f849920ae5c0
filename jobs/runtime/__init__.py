"""The machinery every step shares; the step modules in ``jobs/`` only parse flags and call it.

- ``session``: the one place a SparkSession is built; ``step``: ``run_cli`` (logging, config,
  exit codes) and staging folders;
- ``config``: typed step configs, flags and YAML; ``layout``: every path under a data root;
- ``storage``: local and Hadoop file systems; ``readers``/``writers``: table I/O with errors
  that name the bad file; ``manifest``: run manifests and code version; ``fingerprint``;
  ``lock``: one run per data root;
- ``registry``: MLflow (tracking store, model logging, ``models:/`` resolution, aliases);
  ``scoring``: a resolved model run over users and items in pandas UDFs;
- ``training``: the Horovod / TorchDistributor worker; ``pyfiles``: the ``--py-files`` zip.
"""
