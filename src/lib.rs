//! telem-deploy library.
