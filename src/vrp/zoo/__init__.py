"""The offline tiny model zoo: a shared word-level tokenizer (:mod:`vrp.zoo.tokenizer`), tiny
builds of the three families (``FamilyAdapter.build_tiny`` in :mod:`vrp.adapters`) and their
training loop (:mod:`vrp.zoo.train`)."""
