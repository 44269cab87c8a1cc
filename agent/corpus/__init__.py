"""A fleet's corpus of drives: manifest, local process pool or Ray, fleet summary."""
