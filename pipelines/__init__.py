"""cartwheel's logic: table schemas and DataFrame -> DataFrame transforms, free of I/O."""
