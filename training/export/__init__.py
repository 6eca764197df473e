"""Stage 4, export: save a run as an adapter or merged model, GGUF, model card, push to the Hub."""
