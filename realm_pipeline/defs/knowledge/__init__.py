"""Knowledge: the pgvector index of the knowledge documents and its resource."""
