"""Sam Rivera's hand-written conversations, one module per thread (assembled in samples/sam_dialogues.py)."""
