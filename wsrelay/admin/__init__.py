"""The admin HTTP API (`admin` in [accounting]): statistics queries as JSON, behind a bearer token."""
