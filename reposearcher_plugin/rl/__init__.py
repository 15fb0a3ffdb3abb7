"""Layer 7: training RepoSearcher with verl: tool adapter, reward, RL and SFT data, rejection sampling."""
