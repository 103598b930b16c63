"""Storage protocols and their in-memory and SQLite implementations (imported lazily)."""
