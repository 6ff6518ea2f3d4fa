//! End-to-end runs of telem-deploy on a fresh Debian root (see tests/sandbox/).
