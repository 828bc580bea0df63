// Digest: thin typed wrapper, one Swift function per C call.
