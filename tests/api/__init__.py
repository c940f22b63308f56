"""The whole API through Flask's test client, every response checked against the contract."""
