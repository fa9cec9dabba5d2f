"""The one shared library of every Agora process: settings, logging, errors,
identity context, gRPC server and client plumbing, database access and token
verification. Services import from here instead of repeating it."""
