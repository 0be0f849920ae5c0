"""One night, as data: ``steps`` (the registry: each step's config, inputs and runner),
``plan`` (fingerprints and the skip/redo rule), ``run`` (``Night``: run or skip each step in
order, record the state), ``publish`` (pending tables into ``recs/``, the ``_latest`` pointer)
and ``report`` (the night's HTML report and its summary lines). ``jobs/nightly.py`` is the
entry point that takes the lock and calls them."""
