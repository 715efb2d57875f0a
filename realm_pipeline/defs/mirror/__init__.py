"""Mirror: the public, leak-checked export."""
