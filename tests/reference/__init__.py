"""An independent implementation of domain.md, used to cross-check the pipeline's outputs."""
