"""talklike's library: chat exports -> persona examples -> fine-tuned model. Never imports gradio."""
