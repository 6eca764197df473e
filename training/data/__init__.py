"""Stage 1, data: chat exports and data sets in (formats, sources), training examples out (persona, scrub)."""
