"""The paper's figures drawn from a run's metric files, one module per figure."""
