"""The command line: `serve`, the troubleshooting verbs, their HTTP client, views and doctor."""
