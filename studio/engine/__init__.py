"""The inference engine (no Qt): requests in, streamed results out, one worker thread owns torch."""
