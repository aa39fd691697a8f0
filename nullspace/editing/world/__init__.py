"""The course's stand-in for Wikipedia and GPT-2 XL: a generated world of invented people
(:mod:`.facts`), its word-level tokenizer (:mod:`.tokenizer`) and the small split-block GPT-2
trained on it (:mod:`.teaching_model`)."""
