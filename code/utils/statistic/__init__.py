"""Results into tables: run lists (record), their columns (title) and the table itself (table)."""
