"""Scoring edited models: CounterFact- and ZsRE-style metrics (:mod:`.counterfact`), fact recall
(:mod:`.recall`), the sequential-editing experiment with general ability tracked along the way
(:mod:`.experiment`), and how far hidden states of preserved knowledge move (:mod:`.shift`)."""
