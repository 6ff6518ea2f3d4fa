//! Clear Linux and CentOS scenarios with recording shims (see tests/shims/).
