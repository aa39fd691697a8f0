"""Knowledge editing (AlphaEdit, Fang et al., ICLR 2025): fact world, teaching model, methods."""
