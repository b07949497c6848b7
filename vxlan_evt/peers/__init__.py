"""Who is where: the peer table and the backends that fill it."""
