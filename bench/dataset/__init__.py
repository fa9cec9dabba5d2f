"""The benchmark data set: generated in Python, loaded with COPY into each service's schema."""
