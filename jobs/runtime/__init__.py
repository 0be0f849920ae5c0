"""The machinery every step shares. Today: ``layout``, every path convention under a data root.

(The rest of the runtime, session, config, storage, manifests and the lock, still sits beside
the step modules in ``jobs/``; it moves here piece by piece.)
"""
