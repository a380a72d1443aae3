"""Storage: SQLAlchemy models, the database connection and the repository the daemon writes through."""
