"""SQL read by the API, one file per query, each naming its parameters and the index it uses."""
