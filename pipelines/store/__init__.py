"""Reading and writing the project's files: artifact paths and atomic writes, params, data readers,
tables, the data contract, corrected labels."""
