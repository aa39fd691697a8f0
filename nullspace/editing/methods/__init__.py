"""The editing methods of AlphaEdit's Table 1, one file each, side by side with their shared loop.

* :mod:`.sequential`: the loop every editor shares (batches in sequence, the cache of edited keys,
  restoring the unedited weights) and the target vectors of a batch;
* :mod:`.ft`: constrained fine-tuning (FT-L);
* :mod:`.rome`: ROME's rank-one update and its sequential editor;
* :mod:`.memit`: MEMIT's batch update (AlphaEdit Eq. 15) and its editor;
* :mod:`.alphaedit`: AlphaEdit's null-space-constrained update (Eq. 14) and its editor.
"""
