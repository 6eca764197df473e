"""Stage 3, chat: load a run or model the way it was trained and stream its replies."""
