"""Scoring edited models: CounterFact- and ZsRE-style metrics (:mod:`.counterfact`), fact recall
(:mod:`.recall`), the sequential-editing experiment with general ability tracked along the way
(:mod:`.experiment`), how far hidden states of preserved knowledge move (:mod:`.shift`), and the six
general-ability tasks of AlphaEdit's Fig. 4 read from the user's files (:mod:`.glue_data`) and scored
as the official evaluation scores them (:mod:`.glue`)."""
