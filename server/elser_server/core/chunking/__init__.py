"""ES chunking settings and chunkers (word, sentence, none, recursive) with ICU boundaries."""
