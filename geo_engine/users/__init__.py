"""Users: where citizens live (placement in communes, imports, moves) and their profiles."""
