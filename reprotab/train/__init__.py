"""The train stage's library: model families, samplers, the fit and refit, pseudo-labeling, and
`run_train`."""
