"""Built-in endpoint descriptors, installed as ``engine.endpoints``: data files only.

One ``<canonical id>.yaml`` per endpoint (the id rule is in ``engine.registry``), and
``aliases.yaml`` mapping short names to canonical ids.
"""
