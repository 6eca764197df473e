"""The persona report: how much does a run sound like its person, measured on held-out chats.

Pure metrics (style, text, classifier, stats, metrics) take texts and numbers; heldout picks the
rows; loss and build load the models; render turns a report into sentences and markdown.
"""
