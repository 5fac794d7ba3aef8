"""One call session: a source wired to the pipeline, the recorder and the outputs."""
