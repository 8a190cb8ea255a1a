"""Export, metadata and animation writers (no Qt): every file carries what made it, written all or nothing."""
