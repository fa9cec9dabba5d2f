"""Developer and operator tooling: code generation, the local stack launcher, bootstrap."""
