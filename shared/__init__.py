"""idrettsbro: the logic behind the Azure Functions (pure core + adapters at the edge)."""
